"""OTLP/HTTP ingest: OpenTelemetry traces and logs into the span and log tables."""
