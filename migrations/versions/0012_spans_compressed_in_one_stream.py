"""TimescaleDB: `spans` compressed in one time-ordered stream per chunk, not one per model.

On TimescaleDB only (plain PostgreSQL and SQLite: nothing to do).

0001 segmented the compressed spans by `model`: each model (and the spans without one) got its
own batches of up to 1,000 rows. A trace calls several models, so reading one trace decompressed
one whole batch per model it called plus one for its other spans, every column of each (a batch
with one matching row is decompressed whole), and the compressed chunk could only be scanned
whole, its index leading with `model`. Without a segment-by column the spans of a trace, which
start seconds apart, lie in one batch (two at a batch edge), found through the chunk's index on
the batches' time range, and the trace's `trace_id` bloom filter skips the others. Measured on
600,000 spans (bench/RESULTS.md, "Compression settings for trace detail"): the trace's spans
statement 1.0-1.3 -> 0.6-0.7 ms of execution at the median, 9.3 -> 1.0 ms at p95; compression
9.3x -> 11.3x; span pages faster, log pages on a par; a raw percentile-by-model query over 7 days
2.3-3x slower (its rows are no longer grouped by model; the continuous aggregates answer it on
aligned windows).

Chunks compressed before this migration keep their settings until they are compressed again
(`SELECT compress_chunk(c, recompress => true) FROM show_chunks('spans') c`); the answers are the
same either way. `logs` keep theirs (segment-by `service_name`: a trace's logs are in one batch).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _spans_segmented_by(segmentby: str) -> None:
    from observatory_api.db.timescaledb_ddl import when_timescaledb

    compressed_spans = (
        "EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = 'spans' AND compression_enabled)"
    )
    statements = (
        f"ALTER TABLE spans SET (timescaledb.compress_segmentby = '{segmentby}',"
        " timescaledb.compress_orderby = 'start_time DESC');"
    )
    op.execute(when_timescaledb(statements, only_if=compressed_spans))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _spans_segmented_by("")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _spans_segmented_by("model")
