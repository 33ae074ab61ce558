"""What the handlers share, created by the startup handler and kept in kopf's ``memo``."""

from __future__ import annotations

from dataclasses import dataclass

import kopf

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.settings import OperatorSettings

#: ``memo`` key of the :class:`OperatorContext`; ``memo.settings`` may be preset (tests, CLI).
CONTEXT_KEY = "agentfleet"
SETTINGS_KEY = "settings"


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: KubeClient


def context_from(memo: kopf.Memo) -> OperatorContext:
    context = memo.get(CONTEXT_KEY) if memo is not None else None
    if not isinstance(context, OperatorContext):
        raise RuntimeError("the operator context is missing: did the startup handler run?")
    return context
