"""Token revocation in the database: `revoked_token_families` and `refresh_token_uses`.

Logouts and refresh-token reuse revoke a token family (every access and refresh token of one
login); each refresh token's one use is claimed by an INSERT on its `jti`. Both lived in Redis,
where an eviction, a FLUSHALL or a restart without persistence brought logged-out and spent tokens
back. Rows past `expires_at` can no longer matter (no token of theirs verifies) and are pruned by
the API.

The API writes these two tables, and nothing else, with the role of `DATABASE_URL`. Where that is
the read-only role (`database.readonly_user`, as in compose.yml, whose API never gets the owner's
password), this revision grants that role SELECT, INSERT and DELETE on exactly these tables, when
the role exists (deploy/sql/create_readonly_role.sql grants the same when run later).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
TABLES = ("revoked_token_families", "refresh_token_uses")


def upgrade() -> None:
    op.create_table(
        "revoked_token_families",
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("family_id", name="pk_revoked_token_families"),
    )
    op.create_index("ix_revoked_token_families_revoked_at", "revoked_token_families", ["revoked_at"])
    op.create_index("ix_revoked_token_families_expires_at", "revoked_token_families", ["expires_at"])
    op.create_table(
        "refresh_token_uses",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("used_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_refresh_token_uses"),
    )
    op.create_index("ix_refresh_token_uses_expires_at", "refresh_token_uses", ["expires_at"])
    if op.get_context().dialect.name == "postgresql" and (role := _readonly_role()):
        # Decided inside the database, so `migrate --sql` carries it: the role may not exist yet.
        literal = "'" + role.replace("'", "''") + "'"
        op.execute(
            f"""
            DO $$
            BEGIN
              IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal}) THEN
                EXECUTE format('GRANT SELECT, INSERT, DELETE ON {", ".join(TABLES)} TO %I', {literal});
              END IF;
            END
            $$;
            """
        )


def _readonly_role() -> str | None:
    context = op.get_context()
    settings = context.config.attributes.get("database_settings") if context.config else None
    return getattr(settings, "readonly_user", None) or None


def downgrade() -> None:
    op.drop_table("refresh_token_uses")
    op.drop_table("revoked_token_families")
