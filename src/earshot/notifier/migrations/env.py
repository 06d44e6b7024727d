"""Alembic environment of the notifier database (run through `earshot.common.db.migrate`)."""

from typing import cast

from alembic import context
from alembic.runtime.environment import EnvironmentContext

from earshot.common.db import run_migrations
from earshot.notifier.models import Base

# `alembic.context` is a module proxying the live EnvironmentContext; its stub types it as a module.
run_migrations(cast(EnvironmentContext, context), Base.metadata)
