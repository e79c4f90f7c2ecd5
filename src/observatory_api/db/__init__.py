"""Database access: one MetaData, the engines, and the only per-dialect SQL."""
