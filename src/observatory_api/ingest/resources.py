"""The write path a worker opens when ingest is enabled: part of the lifespan's resources."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.ingest.report import IngestWarnings
from observatory_api.storage import TelemetryWriter


@dataclass(frozen=True, slots=True)
class IngestResources:
    # The owner role's engine (DATABASE_URL); the read path keeps its read-only role.
    engine: AsyncEngine
    writer: TelemetryWriter
    # Exports this worker writes at once; the others wait for a slot (export.py).
    slots: asyncio.Semaphore
    warnings: IngestWarnings


class _WithIngest(Protocol):
    @property
    def ingest(self) -> IngestResources | None: ...


def ingest_resources(state: State) -> IngestResources:
    """The write path of the lifespan's resources (`observatory_api.resources`); the ingest routes
    exist only when ingest is enabled, and the lifespan then opens it."""
    resources: _WithIngest = state.resources
    if resources.ingest is None:
        raise RuntimeError("ingest is not enabled in this worker")
    return resources.ingest
