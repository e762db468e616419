"""Login, logout, profile, password and session management."""
