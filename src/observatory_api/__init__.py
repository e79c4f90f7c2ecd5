"""observatory-api: a query service for LLM observability data."""

__version__ = "0.1.0"
