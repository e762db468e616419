"""Background loops: each sweeps PostgreSQL so work converges even if a message is lost."""
