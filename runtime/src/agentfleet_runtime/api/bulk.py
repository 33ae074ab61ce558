"""Bulk operations: many items in one request, one result per item.

A bulk request is validated as a whole first (a malformed item, or more than
:data:`MAX_BATCH` items, is a 422 and nothing runs). Then every item runs on its own, in
order, with the same checks as its single-item endpoint (scope, tenant, quotas): the
response is **200** with a result per item — ``{index, status, id?, problem?}`` where
``status`` is the HTTP status the single-item call would have answered and ``problem``
its RFC 9457 body. One item failing does not stop the others; nothing is rolled back.
(Chosen over 207 Multi-Status, whose XML body is WebDAV's: clients read ``results``.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from agentfleet_runtime.errors import AgentfleetError

log = logging.getLogger(__name__)

#: Items per bulk request.
MAX_BATCH = 100


class BulkItemResult(BaseModel):
    index: int = Field(description="The item's position in the request")
    status: int = Field(description="What the single-item call would have answered")
    id: str | None = Field(default=None, description="The created/deleted object's id or name")
    problem: dict[str, Any] | None = Field(
        default=None, description="The RFC 9457 problem, when the item failed"
    )


class BulkResult(BaseModel):
    results: list[BulkItemResult]
    succeeded: int
    failed: int


def problem_of(exc: AgentfleetError, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": exc.problem_type(),
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": instance,
    }
    body.update({k: v for k, v in exc.extensions.items() if v is not None})
    return body


async def run_bulk[I](
    items: Sequence[I],
    run: Callable[[I], Awaitable[str | None]],
    *,
    status: int,
    instance: str,
) -> BulkResult:
    """``await run(item)`` for each item in order (its result: the id); an
    :class:`AgentfleetError` becomes that item's problem. Anything else is a bug: it is
    logged and reported as a 500 ``internal`` item, and the batch goes on."""
    results: list[BulkItemResult] = []
    for index, item in enumerate(items):
        try:
            item_id = await run(item)
        except AgentfleetError as exc:
            results.append(
                BulkItemResult(index=index, status=exc.status, problem=problem_of(exc, instance))
            )
        except Exception:
            log.exception("bulk item failed", extra={"index": index, "instance": instance})
            internal = AgentfleetError("an unexpected error occurred")
            results.append(
                BulkItemResult(index=index, status=500, problem=problem_of(internal, instance))
            )
        else:
            results.append(BulkItemResult(index=index, status=status, id=item_id))
    failed = sum(1 for r in results if r.problem is not None)
    return BulkResult(results=results, succeeded=len(results) - failed, failed=failed)
