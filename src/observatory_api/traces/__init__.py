"""Traces: list, detail, search."""
