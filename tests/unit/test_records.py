from __future__ import annotations

from datetime import datetime

import msgspec
import pytest

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.db.tables import logs, spans


def test_records_have_the_columns_of_their_tables_in_order() -> None:
    # The writer turns records into rows with msgspec.structs.astuple.
    assert SpanRecord.__struct_fields__ == tuple(spans.c.keys())
    assert LogRecord.__struct_fields__ == tuple(logs.c.keys())


def test_a_log_id_is_generated_when_absent() -> None:
    time = datetime.fromisoformat("2025-01-01T00:00:00+00:00")
    first, second = (LogRecord(time=time, service_name="s", severity="INFO", body="b") for _ in range(2))
    assert len(first.log_id) == 32
    assert first.log_id != second.log_id


def test_decoding_rejects_naive_timestamps() -> None:
    payload = b'{"time": "2025-01-01T00:00:00", "service_name": "s", "severity": "INFO", "body": "b"}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(payload, type=LogRecord)
