"""Platform user administration."""
