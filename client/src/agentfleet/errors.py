"""The SDK's exceptions.

::

    AgentfleetClientError
    ├── APIError                  an RFC 9457 problem from the REST API (status, type, detail)
    │   └── AuthenticationError   401: no token, a bad token, or an expired one
    ├── MessageRejectedError      the server answered a message with an error frame
    └── RealtimeClosedError       the WebSocket ended for good (a terminal close code)
"""

from __future__ import annotations

from typing import Any


class AgentfleetClientError(Exception):
    pass


class APIError(AgentfleetClientError):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail") or self.title or f"HTTP {status}")
        super().__init__(f"{status} {self.title}: {self.detail}")


class AuthenticationError(APIError):
    pass


class MessageRejectedError(AgentfleetClientError):
    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


class RealtimeClosedError(AgentfleetClientError):
    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed ({code}): {reason}")
