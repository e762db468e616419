"""Shared code of the Inventiv Agents control plane: settings, database, bus, lifecycle."""
