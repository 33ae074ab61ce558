"""Secret provider adapters. The cloud ones import their SDK lazily (optional extras)."""
