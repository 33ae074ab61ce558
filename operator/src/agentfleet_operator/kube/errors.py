"""Errors of the API client. Transport and HTTP failures are translated here, once::

KubeError                  any failed call (status 0: no HTTP answer at all)
├── NotFoundError          404
├── ConflictError          409 (exists already / stale resourceVersion)
├── InvalidError           422 (rejected by validation or a failed JSON-patch test)
└── OwnershipConflictError an object with the wanted name exists and is not ours
"""

from __future__ import annotations


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    pass


class InvalidError(KubeError):
    pass


class OwnershipConflictError(KubeError):
    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(
            409,
            "OwnershipConflict",
            f"{kind} {namespace}/{name} exists and is not owned by this resource",
        )
        self.kind = kind
        self.name = name


def error_for(status: int, reason: str, message: str) -> KubeError:
    cls: type[KubeError] = {404: NotFoundError, 409: ConflictError, 422: InvalidError}.get(
        status, KubeError
    )
    return cls(status, reason, message)
