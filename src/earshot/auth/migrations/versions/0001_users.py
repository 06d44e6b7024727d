"""Users: email (unique, normalised), argon2id password hash, admin flag, creation time.

Revision ID: 0001_users
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001_users"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# MySQL/MariaDB: utf8mb4 whatever the server's default, and binary comparison like the other engines
# (emails are stored normalised, so case-insensitive collation would add nothing).
MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
# MySQL's plain DATETIME drops microseconds; the value is UTC, stored without a zone there.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create the users table."""
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop the users table."""
    op.drop_table("users")
