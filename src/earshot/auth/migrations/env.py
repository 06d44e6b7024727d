"""Alembic environment of the auth database: runs on the connection `common.db.migrate` passes."""

from typing import cast

from alembic import context
from alembic.runtime.environment import EnvironmentContext

from earshot.auth.models import Base
from earshot.common.db import run_migrations

# `alembic.context` is a module proxy for the running EnvironmentContext
run_migrations(cast(EnvironmentContext, context), Base.metadata)
