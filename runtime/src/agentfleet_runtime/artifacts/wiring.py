"""Opening the artifact store from the runtime's settings (called from the app's lifespan):
the store of the configured backend — S3 calls through the resilience pipeline
``artifacts`` (``storage`` category) — and the retention sweep."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from agentfleet_runtime.artifacts.base import ArtifactStore
from agentfleet_runtime.artifacts.errors import DEPENDENCY
from agentfleet_runtime.artifacts.filesystem import FilesystemArtifactStore
from agentfleet_runtime.artifacts.service import ArtifactService
from agentfleet_runtime.artifacts.settings import ArtifactSettings

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["build_store", "open_artifacts"]

log = logging.getLogger(__name__)


def build_store(
    settings: ArtifactSettings, registry: ResilienceRegistry | None = None
) -> ArtifactStore:
    if settings.backend == "s3":
        from agentfleet_runtime.artifacts.s3 import S3ArtifactStore

        pipeline = registry.pipeline(DEPENDENCY, "storage") if registry is not None else None
        return S3ArtifactStore(settings.s3, pipeline=pipeline)
    return FilesystemArtifactStore(settings.dir)


@contextlib.asynccontextmanager
async def open_artifacts(
    settings: ArtifactSettings, registry: ResilienceRegistry | None = None
) -> AsyncIterator[ArtifactService]:
    service = ArtifactService(build_store(settings, registry), settings)
    service.start()
    where = (
        f"s3://{settings.s3.bucket}/{settings.s3.prefix}"
        if settings.backend == "s3"
        else str(settings.dir.resolve())
    )
    log.info("artifacts: %s store at %s", settings.backend, where)
    try:
        yield service
    finally:
        await service.aclose()
