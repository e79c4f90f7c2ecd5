"""Metrics: the catalogue, the query engine over raw spans and rollups, and the rollup writer."""
