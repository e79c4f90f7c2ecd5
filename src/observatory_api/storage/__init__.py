"""Writing telemetry: span and log records, and the writer that stores them with their summaries."""

from observatory_api.core.records import LogRecord, SpanRecord, new_log_id
from observatory_api.storage.writer import TelemetryWriter

__all__ = ["LogRecord", "SpanRecord", "TelemetryWriter", "new_log_id"]
