"""The control plane: commands, lifecycle loops, and the workers' register/heartbeat."""
