"""Logs tied to traces and spans."""
