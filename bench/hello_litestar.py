"""Litestar's hello world, the floor `bench/cached_get.py` measures a cached GET against:
one route, a small JSON object, no middleware. `granian --interface asgi bench.hello_litestar:app`."""

from __future__ import annotations

from litestar import Litestar, get


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"hello": "world"}


@get("/alive", sync_to_thread=False)
def alive() -> dict[str, str]:
    return {"status": "alive"}


app = Litestar([hello, alive])
