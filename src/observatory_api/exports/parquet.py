"""`format=parquet`: a typed Parquet file written ROWS_PER_GROUP rows a row group, streamed as it grows.

pyarrow is an optional extra (`observatory-api[parquet]`): without it the format is refused
with a 400 that says what to install. With it, each worker loads it as it starts
(`query.preload_parquet`: `preload()`). The schema comes from the record's msgspec Struct:
text, integers, floats, booleans, UTC timestamps (microseconds), lists of text; attributes and
other nested values as JSON text, as in CSV.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from observatory_api.core.errors import InvalidInput

INSTALL_HINT = "format=parquet needs pyarrow on the server: install observatory-api[parquet]"
# Rows of a row group. pyarrow's writer keeps every row group's metadata for the footer until the
# file ends (~25 KB a group of spans with statistics on every column, ~3.5 KB without them on the
# content columns: NO_STATISTICS), and holds a group's rows as Arrow
# columns until it writes them (~1 KB a demo span): 1,000-row groups made a million-span export
# grow the writer by ~65 MB, 10,000-row groups by ~20 MB, the least of 1,000 to 20,000
# (bench/RESULTS.md, "Export memory and throughput at one million spans"). Boundaries fall
# every ROWS_PER_GROUP rows whatever the pages, so the CLI's file (exports/local.py) is the
# service's byte for byte.
ROWS_PER_GROUP = 10_000
# Columns written without min/max statistics: prompt and completion text, messages, and the JSON
# columns. Their statistics are long strings (in every page header and in the footer for every
# row group: ~20 of a span group's ~24 KB of footer) and no reader prunes on the min or max of a
# prompt. Every other column (ids, names, times, numbers) keeps them.
NO_STATISTICS = frozenset({"input", "output", "status_message", "body"})
_encoder = msgspec.json.Encoder()


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # optional: imported when a Parquet export is asked for
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput.field("format", INSTALL_HINT, "query") from None
    return pa, pq


class _Warm(msgspec.Struct):
    text: str
    count: int
    share: float
    flag: bool
    at: datetime
    tags: list[str]
    attributes: dict[str, Any]


def preload() -> bool:
    """Import pyarrow and write one row of every column type as Parquet into memory: what pyarrow
    sets up once (its modules, the zstd codec, its threads; ~55 MB) then belongs to the worker's
    start-up, not to the first Parquet export's growth. False when pyarrow is not installed."""
    try:
        writer = ParquetPageWriter(_Warm)
    except InvalidInput:
        return False
    writer.page([_Warm("a", 1, 0.5, True, datetime.now(UTC), ["b"], {"c": 1})])
    writer.finish()
    return True


def _arrow_type(pa: Any, info: msgspec.inspect.Type) -> tuple[Any, bool]:
    """The Arrow type of a field, and whether its values are stored as JSON text."""
    if isinstance(info, msgspec.inspect.UnionType):
        inner = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return _arrow_type(pa, inner[0]) if len(inner) == 1 else (pa.string(), True)
    simple: dict[type[msgspec.inspect.Type], Any] = {
        msgspec.inspect.StrType: pa.string(),
        msgspec.inspect.IntType: pa.int64(),
        msgspec.inspect.FloatType: pa.float64(),
        msgspec.inspect.BoolType: pa.bool_(),
        msgspec.inspect.DateTimeType: pa.timestamp("us", tz="UTC"),
    }
    if type(info) in simple:
        return simple[type(info)], False
    if isinstance(info, msgspec.inspect.ListType) and isinstance(info.item_type, msgspec.inspect.StrType):
        return pa.list_(pa.string()), False
    return pa.string(), True


class _Drain(io.RawIOBase):
    """A write-only file that hands out what was written since the last `take()`; `tell()` counts
    every byte, as the Parquet footer's offsets need."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken, self._chunks = b"".join(self._chunks), []
        return taken


class ParquetPageWriter:
    """A `PageWriter`: pages converted to Arrow as they come, written a row group every
    `rows_per_group` rows (the last one at `finish()`, with the footer)."""

    def __init__(self, record: type[msgspec.Struct], rows_per_group: int = ROWS_PER_GROUP) -> None:
        pa, pq = _import_pyarrow()
        self._pa = pa
        self._rows_per_group = rows_per_group
        # Pages converted to Arrow, not yet written: fewer than rows_per_group rows between calls.
        self._pending: list[Any] = []
        self._pending_rows = 0
        fields = msgspec.inspect.type_info(record).fields  # type: ignore[attr-defined]
        self._columns: list[tuple[str, bool]] = []
        arrow_fields = []
        for field in fields:
            arrow, as_json = _arrow_type(pa, field.type)
            self._columns.append((field.name, as_json))
            arrow_fields.append(pa.field(field.name, arrow, nullable=True))
        self.schema = pa.schema(arrow_fields)
        self._drain = _Drain()
        with_statistics = [name for name, as_json in self._columns if not as_json and name not in NO_STATISTICS]
        self._writer = pq.ParquetWriter(self._drain, self.schema, compression="zstd", write_statistics=with_statistics)

    def page(self, records: Sequence[Any]) -> bytes:
        columns = {}
        for name, as_json in self._columns:
            values = [getattr(record, name) for record in records]
            if as_json:
                values = [None if v is None else _encoder.encode(v).decode() for v in values]
            columns[name] = values
        if records:
            self._pending.append(self._pa.Table.from_pydict(columns, schema=self.schema))
            self._pending_rows += len(records)
        while self._pending_rows >= self._rows_per_group:
            self._write_group(self._rows_per_group)
        return self._drain.take()

    def finish(self) -> bytes:
        if self._pending_rows:
            self._write_group(self._pending_rows)
        self._writer.close()
        return self._drain.take()

    def _write_group(self, rows: int) -> None:
        """Write the first `rows` pending rows as one row group, keep the rest pending."""
        pending = self._pa.concat_tables(self._pending)
        self._writer.write_table(pending.slice(0, rows), row_group_size=max(rows, 1))
        rest = pending.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
