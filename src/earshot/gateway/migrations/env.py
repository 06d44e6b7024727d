"""Alembic environment of the jobs database: runs on the connection `common.db.migrate` passes."""

from typing import cast

from alembic import context
from alembic.runtime.environment import EnvironmentContext

from earshot.common.db import run_migrations
from earshot.gateway.models import Base

# `alembic.context` is a module proxy for the running EnvironmentContext
run_migrations(cast(EnvironmentContext, context), Base.metadata)
