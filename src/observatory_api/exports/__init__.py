"""Bulk export of spans, traces and logs: streamed in pages, in NDJSON or CSV."""
