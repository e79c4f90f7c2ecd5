"""Observability of the service itself: request ids, Prometheus metrics (middleware.py, db.py,
metrics_server.py for the multi-worker endpoint), logging (log_config.py), OpenTelemetry tracing
(tracing.py) and Sentry (sentry.py); setup.py wires them into `create_app`."""
