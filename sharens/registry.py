"""Registries by name: what votes, metrics and the like use so that a new one is one decorated function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def registrar(registry: dict[str, Any], kind: str, entry: Callable[[str, Callable, str], Any]):
    """A decorator factory `register(name, description)` that stores `entry(name, fn, description)` under `name`."""
    def register(name: str, description: str):
        def add(fn: Callable) -> Callable:
            if name in registry:
                raise ValueError(f"{kind} {name!r} is registered twice")
            registry[name] = entry(name, fn, description)
            return fn
        return add
    return register


def lookup(registry: dict[str, Any], kind: str, name: str) -> Any:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(registry)}")
    return registry[name]
