"""Organization API keys: shown once, stored hashed."""
