"""Sessions: traces grouped by session id."""
