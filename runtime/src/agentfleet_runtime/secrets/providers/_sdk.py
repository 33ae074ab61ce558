"""Lazy imports of optional SDKs, and running blocking SDK calls off the event loop."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.secrets.errors import SecretProviderNotInstalledError

T = TypeVar("T")


def require(module: str, *, provider: str, extra: str) -> ModuleType:
    """Import ``module`` or explain which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SecretProviderNotInstalledError(provider, extra, module) from exc


async def blocking[T](fn: Callable[[], T]) -> T:
    """Run a blocking SDK call in a worker thread."""
    return await asyncio.to_thread(fn)


async def blocking_translated[T](
    fn: Callable[[], T], translate: Callable[[Exception], DependencyError]
) -> T:
    """:func:`blocking`, with the SDK's exceptions translated into the runtime's by
    ``translate`` at this adapter; the runtime's own errors pass through unchanged."""
    try:
        return await blocking(fn)
    except DependencyError:
        raise
    except Exception as exc:
        raise translate(exc) from None
