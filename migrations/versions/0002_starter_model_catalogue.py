"""Starter model catalogue: well-known models and their public list prices.

Later price changes belong in new revisions that update these rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from observatory_api.models.catalogue_data import STARTER_MODELS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    models = sa.table(
        "models",
        sa.column("id", sa.String),
        sa.column("provider", sa.String),
        sa.column("name", sa.String),
        sa.column("display_name", sa.String),
        sa.column("context_window", sa.Integer),
        sa.column("input_price_per_mtok", sa.Double),
        sa.column("output_price_per_mtok", sa.Double),
        sa.column("cache_read_price_per_mtok", sa.Double),
        sa.column("cache_write_price_per_mtok", sa.Double),
        sa.column("reasoning_price_per_mtok", sa.Double),
    )
    op.bulk_insert(models, [dict(model) for model in STARTER_MODELS])


def downgrade() -> None:
    ids = [model["id"] for model in STARTER_MODELS]
    op.execute(sa.text("DELETE FROM models WHERE id IN :ids").bindparams(sa.bindparam("ids", ids, expanding=True)))
