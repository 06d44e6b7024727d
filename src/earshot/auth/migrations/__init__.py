"""Alembic migrations of the auth database (script location `earshot.auth:migrations`)."""
