"""A worker's memory at start, in a fresh interpreter: RSS after importing the app, after
`create_app` (ingest on), and after `import pyarrow.parquet` (what `query.preload_parquet` adds).

    PYTHONPATH=src .venv/bin/python bench/worker_start_memory.py            # the defaults
    PYTHONPATH=src .venv/bin/python bench/worker_start_memory.py --off      # GraphQL and gRPC off

Run it with another checkout's `src` on PYTHONPATH to compare two trees (deterministic to ~0.1 MB).
"""

from __future__ import annotations

import argparse
import os
import sys


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--off", action="store_true", help="graphql.enabled false, ingest.grpc_port 0")
    args = parser.parse_args()
    bare = rss_mb()
    from observatory_api.app import create_app
    from observatory_api.settings import FeatureSettings, GraphQLSettings, IngestSettings, load_settings

    imported = rss_mb()
    settings = load_settings().replace(features=FeatureSettings(ingest=True))
    if args.off:
        settings = settings.replace(graphql=GraphQLSettings(enabled=False), ingest=IngestSettings(grpc_port=0))
    create_app(settings)
    built = rss_mb()
    import pyarrow.parquet  # noqa: F401

    print(
        f"RSS MB: bare {bare:.1f}, app imported {imported:.1f}, create_app {built:.1f}, "
        f"+ pyarrow.parquet {rss_mb():.1f}; {len(sys.modules)} modules"
    )


if __name__ == "__main__":
    main()
