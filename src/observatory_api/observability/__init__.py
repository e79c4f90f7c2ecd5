"""Request ids, logging and (later) metrics and tracing of the service itself."""
