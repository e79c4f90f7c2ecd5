"""Spans: LLM calls and the other steps of a trace."""
