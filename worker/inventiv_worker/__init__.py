"""The worker agent that runs beside the inference engine on every GPU instance.

It imports nothing of the control plane: it installs with the `worker` extra alone.
"""
