"""Workflow variables (``Assign``) and their scopes.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html):
a variable set by ``Assign`` is visible to every later state of the same scope; the states
of a Parallel branch or a Map iteration run in an inner scope that reads the outer scope's
variables but cannot assign them (a name already set outside cannot be set inside), and
whatever the inner scope assigns disappears when it ends. Distributed Map child
executions cannot read outer variables at all.
"""

from __future__ import annotations

import json
import threading
from typing import Any


class Scope:
    """One variable scope; ``parent`` is the enclosing one (readable, never written)."""

    def __init__(self, parent: "Scope | None" = None, values: dict[str, Any] | None = None) -> None:
        self.parent = parent
        self.values: dict[str, Any] = dict(values or {})
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        """The variable's value, from this scope or the nearest enclosing one.

        Raises:
            KeyError: no scope defines it.
        """
        scope: Scope | None = self
        while scope is not None:
            with scope._lock:
                if name in scope.values:
                    return scope.values[name]
            scope = scope.parent
        raise KeyError(name)

    def has(self, name: str) -> bool:
        """Whether the variable is defined here or in an enclosing scope."""
        try:
            self.get(name)
            return True
        except KeyError:
            return False

    def outer_has(self, name: str) -> bool:
        """Whether an enclosing scope (not this one) defines the variable."""
        return self.parent is not None and self.parent.has(name)

    def all(self) -> dict[str, Any]:
        """Every visible variable, inner scopes shadowing nothing (outer names are read-only)."""
        chain: list[Scope] = []
        scope: Scope | None = self
        while scope is not None:
            chain.append(scope)
            scope = scope.parent
        out: dict[str, Any] = {}
        for scope in reversed(chain):
            with scope._lock:
                out.update(scope.values)
        return out

    def assign(self, values: dict[str, Any]) -> None:
        """Set variables in this scope, all at once."""
        with self._lock:
            self.values.update(values)

    def total_size(self) -> int:
        """Bytes of every visible variable's JSON (the 10 MiB per-execution quota)."""
        return sum(len(json.dumps(v, separators=(",", ":"), default=str).encode()) for v in self.all().values())

    def child(self) -> "Scope":
        """A new inner scope (a Parallel branch, a Map iteration)."""
        return Scope(self)
