"""Users, sessions, organizations and their bootstrap."""
