"""Fixtures of the delivery tests: the real tools and the chart renderer
(helpers in delivery_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from delivery_helpers import Renderer, require_tool


@pytest.fixture(scope="session")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return require_tool("hadolint")


@pytest.fixture(scope="session")
def shellcheck() -> str:
    return require_tool("shellcheck")


@pytest.fixture(scope="session")
def check_jsonschema() -> str:
    return require_tool("check-jsonschema")


@pytest.fixture(scope="session")
def render(helm: str) -> Renderer:
    return Renderer(helm)
