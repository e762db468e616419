"""Worker registration and heartbeats."""
