"""What the simulator takes from the state machine that is actually run (an ASL JSON file).

Read, not restated: each function's Retry and Catch (Retry as
``emulator.stepfunctions.retry`` objects, whose backoff the simulation uses
unchanged), the Distributed Map's MaxConcurrency (literal or from the input
path), ToleratedFailurePercentage/Count, whether children are Express or
Standard, and how many state transitions a successful execution and each
child make. AWS bills Standard workflows per state transition, retries
included (https://aws.amazon.com/step-functions/pricing/); an Express child is
billed per request and duration, while the parent's own transitions stay
Standard.

Functions are recognised by their ``${...FunctionArn}`` substitution key
(``emulator.contracts.job.SUBSTITUTION_KEYS``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.contracts.errors import ConfigError
from emulator.contracts.job import DEFAULT_DEFINITION_PATH, SUBSTITUTION_KEYS
from emulator.stepfunctions.retry import Retrier, find_catcher, retriers_of

_TERMINAL = ("Succeed", "Fail")


@dataclass(frozen=True)
class Workflow:
    """The parts of a definition the simulation needs."""

    source: str
    retriers: dict[str, tuple[Retrier, ...]]  # role -> Retry of its Task state
    max_concurrency: int | None  # literal MaxConcurrency, else None
    max_concurrency_path: str | None  # MaxConcurrencyPath, read from the execution input
    tolerated_failure_percentage: float | None
    tolerated_failure_count: int | None
    express_children: bool
    parent_transitions: int  # states entered by a successful execution
    child_transitions: int  # states entered by one successful child
    timeout_s: float | None = None
    states: dict[str, str] = field(default_factory=dict)  # role -> state name
    catchers: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)  # role -> Catch of its Task

    def caught(self, role: str, error: str) -> bool:
        """Whether ``role``'s Task catches ``error`` (after its retries) instead of failing."""
        return find_catcher({"Catch": list(self.catchers.get(role, ()))}, error) is not None

    def retriers_for(self, role: str) -> tuple[Retrier, ...]:
        """The Retry of ``role``'s Task (empty: no retries)."""
        return self.retriers.get(role, ())

    def map_failed(self, failed: int, total: int) -> bool:
        """Whether the Map run fails with ``failed`` of ``total`` items failed (AWS's failure threshold).

        Without ToleratedFailure* fields any failed item fails the Map run.
        """
        if failed == 0:
            return False
        if self.tolerated_failure_percentage is None and self.tolerated_failure_count is None:
            return True
        over_count = self.tolerated_failure_count is not None and failed > self.tolerated_failure_count
        over_pct = (self.tolerated_failure_percentage is not None
                    and failed / max(1, total) * 100.0 > self.tolerated_failure_percentage)
        return over_count or over_pct


def _role_of(state: dict[str, Any]) -> str | None:
    name = json.dumps(state.get("Parameters", {}).get("FunctionName", ""))
    for role, key in SUBSTITUTION_KEYS.items():
        if "${" + key + "}" in name:
            return role
    return None


def _path_length(states: dict[str, Any], start: str) -> int:
    """States entered from ``start`` to the end on the success path (a Choice takes its first rule)."""
    count, name, seen = 0, start, set()
    while name and name not in seen:
        seen.add(name)
        state = states[name]
        count += 1
        if state.get("Type") in _TERMINAL or state.get("End"):
            break
        if state.get("Type") == "Choice":
            name = (state.get("Choices") or [{}])[0].get("Next") or state.get("Default")
        else:
            name = state.get("Next")
    return count


def read_workflow(path: str | Path | None = None) -> Workflow:
    """Read the definition at ``path`` (default: the one ``run`` and ``aws deploy`` use).

    Raises:
        ConfigError: unreadable JSON, or no Distributed Map with a worker Task.
    """
    path = Path(path) if path else DEFAULT_DEFINITION_PATH
    try:
        definition = json.loads(path.read_text())
        states: dict[str, Any] = definition["States"]
        start = definition["StartAt"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"state machine {path}: cannot read it ({exc}); pass a valid ASL JSON file") from None
    retriers: dict[str, tuple[Retrier, ...]] = {}
    catchers: dict[str, tuple[dict[str, Any], ...]] = {}
    roles: dict[str, str] = {}
    map_state = None
    for name, state in states.items():
        role = _role_of(state)
        if role and state.get("Type") == "Task":
            retriers[role], roles[role] = tuple(retriers_of(state)), name
            catchers[role] = tuple(state.get("Catch", []))
        if state.get("Type") == "Map":
            map_state = state
    if map_state is None:
        raise ConfigError(f"state machine {path}: no Map state; the simulator models a Distributed Map of workers")
    processor = map_state.get("ItemProcessor") or map_state.get("Iterator") or {}
    child_states = processor.get("States", {})
    for name, state in child_states.items():
        if _role_of(state) == "worker" and state.get("Type") == "Task":
            retriers["worker"], roles["worker"] = tuple(retriers_of(state)), name
            catchers["worker"] = tuple(state.get("Catch", []))
    if "worker" not in roles:
        raise ConfigError(f"state machine {path}: the Map has no Task invoking ${{{SUBSTITUTION_KEYS['worker']}}}")
    config = processor.get("ProcessorConfig", {})
    return Workflow(
        source=str(path),
        retriers=retriers,
        max_concurrency=map_state.get("MaxConcurrency"),
        max_concurrency_path=map_state.get("MaxConcurrencyPath"),
        tolerated_failure_percentage=map_state.get("ToleratedFailurePercentage"),
        tolerated_failure_count=map_state.get("ToleratedFailureCount"),
        express_children=config.get("ExecutionType", "STANDARD").upper() == "EXPRESS",
        parent_transitions=_path_length(states, start),
        child_transitions=_path_length(child_states, processor.get("StartAt", "")) if child_states else 1,
        timeout_s=definition.get("TimeoutSeconds"),
        states=roles,
        catchers=catchers,
    )
