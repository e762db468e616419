"""Instances of the caller's workspace: reads, termination, archiving, volumes, activation,
the live feed of their changes, and operator commands about them."""
