"""Alembic migrations of the jobs database (script location `earshot.gateway:migrations`)."""
