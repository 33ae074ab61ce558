"""Estimated cost of model calls: a price table (US dollars per million input and output
tokens) looked up by model name — exact name first, then the longest known prefix (so
``claude-sonnet-4-5-20250929`` finds ``claude-sonnet-4-5``). Prices move: override or
extend them with ``AGENTFLEET_OBSERVABILITY__MODEL_PRICES`` (JSON:
``{"my-model": {"input": 1.0, "output": 2.0}}``). Unknown models cost 0 (and are still
counted in tokens)."""

from __future__ import annotations

from collections.abc import Mapping

from agentfleet_runtime.observability.settings import ModelPrice

__all__ = ["DEFAULT_PRICES", "PriceTable"]

#: List prices (USD per 1M tokens, input/output), as published by the providers.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-haiku-4": (1.0, 5.0),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "o3": (2.0, 8.0),
    "o4-mini": (1.1, 4.4),
    # agentfleet's fake provider: priced so that cost metrics move in tests and demos.
    "fake-model": (1.0, 2.0),
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES)
        for name, price in (overrides or {}).items():
            self._prices[name] = (price.input, price.output)
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, tuple[float, float]] = {}

    def price(self, model: str) -> tuple[float, float]:
        cached = self._cache.get(model)
        if cached is not None:
            return cached
        found = self._prices.get(model)
        if found is None:
            found = next(
                (self._prices[name] for name in self._by_length if model.startswith(name)),
                (0.0, 0.0),
            )
        self._cache[model] = found
        return found

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        per_input, per_output = self.price(model)
        return (input_tokens * per_input + output_tokens * per_output) / 1_000_000
