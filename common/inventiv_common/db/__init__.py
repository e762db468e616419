"""Database access: the async engine, the ORM models and migrations."""
