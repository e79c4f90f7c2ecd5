"""`traces.context_bits`: what the writer needs to know of a trace to carry context down its tree.

Bit 4 + i says some span of the trace names the i-th of user, session, environment and tags; bit
i that some span with a parent misses it (`storage.context.context_bits`). The writer reads it
with the trace's summary before adding spans, and looks up stored parents or children only when
they can hold or take something. Existing rows get 255 ("everything named, everything missing"):
their next write looks everything up, and the refresh then stores the real bits.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("traces", sa.Column("context_bits", sa.SmallInteger(), nullable=False, server_default=sa.text("255")))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("context_bits")
