"""Model price history: `model_prices` holds each model's list prices from an effective time on.

The prices of `models` move to `model_prices`, effective from 1970-01-01 (before any span), and
the price columns leave `models`: the history is the only place prices live, so a model's current
price is its latest entry in effect, and a span is priced with the entry in effect at its start.
The downgrade puts back in `models` the price in effect at the time it runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from observatory_api.db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Fixed here, not imported: a revision must keep creating the same schema when the code moves on.
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
PRICE_COLUMNS = (
    ("input_price_per_mtok", False),
    ("output_price_per_mtok", False),
    ("cache_read_price_per_mtok", True),
    ("cache_write_price_per_mtok", True),
    ("reasoning_price_per_mtok", True),
)
PRICES = ", ".join(name for name, _ in PRICE_COLUMNS)


def upgrade() -> None:
    op.create_table(
        "model_prices",
        sa.Column("model_id", sa.String(300), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Double, nullable=nullable) for name, nullable in PRICE_COLUMNS),
        sa.PrimaryKeyConstraint("model_id", "effective_from", name="pk_model_prices"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_model_prices_model_id", ondelete="CASCADE"),
    )
    # UTCDateTime binds the timestamp in the text format SQLite rows use (and timestamptz on PostgreSQL).
    since = sa.bindparam("since", FAR_PAST, type_=UTCDateTime())
    op.execute(
        sa.text(
            f"INSERT INTO model_prices (model_id, effective_from, {PRICES}) SELECT id, :since, {PRICES} FROM models"
        ).bindparams(since)
    )
    # Batch mode: SQLite rebuilds the table (from the definition below, so `migrate --sql` needs
    # no live database to reflect), PostgreSQL drops the columns in place.
    with op.batch_alter_table("models", copy_from=_models_before()) as batch:
        for name, _ in PRICE_COLUMNS:
            batch.drop_column(name)


def _models_before() -> sa.Table:
    """`models` as revisions 0001 to 0003 left it."""
    return sa.Table(
        "models",
        sa.MetaData(),
        sa.Column("id", sa.String(300), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("context_window", sa.Integer),
        *(sa.Column(name, sa.Double, nullable=nullable) for name, nullable in PRICE_COLUMNS),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.Index("ix_models_provider_name", "provider", "name", unique=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        for name, _ in PRICE_COLUMNS:
            batch.add_column(sa.Column(name, sa.Double))
    bind = op.get_bind()
    history = bind.execute(
        sa.text(
            f"SELECT model_id, effective_from, {PRICES} FROM model_prices ORDER BY model_id, effective_from"
        ).columns(effective_from=UTCDateTime())
    ).mappings()
    current: dict[str, dict[str, float | None]] = {}
    now = datetime.now(UTC)
    for row in history:
        # Rows come oldest first: keep the latest in effect now, or the earliest when none is yet.
        if row["model_id"] not in current or row["effective_from"] <= now:
            current[row["model_id"]] = {name: row[name] for name, _ in PRICE_COLUMNS}
    update = sa.text(f"UPDATE models SET {', '.join(f'{n} = :{n}' for n, _ in PRICE_COLUMNS)} WHERE id = :id")
    for model_id, prices in current.items():
        bind.execute(update, {"id": model_id, **prices})
    # A model without any price cannot satisfy NOT NULL: it was not priced before this revision either.
    bind.execute(sa.text("DELETE FROM models WHERE input_price_per_mtok IS NULL OR output_price_per_mtok IS NULL"))
    with op.batch_alter_table("models") as batch:
        for name, nullable in PRICE_COLUMNS:
            if not nullable:
                batch.alter_column(name, existing_type=sa.Double, nullable=False)
    op.drop_table("model_prices")
