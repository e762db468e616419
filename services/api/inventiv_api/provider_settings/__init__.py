"""Per-organization provider credentials, encrypted by the application."""
