"""What ``lambdatwin simulate --template`` can take from an app: the fan-out the SimPy model sizes.

The capacity model (``sim``) models one Distributed Map of Lambda workers. From a template
this module finds that Map in the state machine and reports, for the function its item
processor invokes: MemorySize, Timeout, architecture and reserved concurrency, plus the Map's
MaxConcurrency, its child ExecutionType (Express or Standard) and ItemBatcher size. The CLI
maps these onto the ``simulate`` flags (``--memory``, ``--timeout``, ``--arch``,
``--max-concurrency``, ``--express``); the data size still comes from the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from emulator.app.template import App
from emulator.contracts.aws import function_name_of
from emulator.contracts.errors import DefinitionFileError
from emulator.stepfunctions.definition import LAMBDA_INVOKE
from emulator.stepfunctions.engine import substitute


@dataclass(frozen=True)
class FanOut:
    """The Distributed Map of an app and the worker function it runs."""

    state: str
    function: str
    memory_mb: int
    timeout_s: float
    arch: str
    reserved_concurrency: int | None
    max_concurrency: int | None
    express: bool
    items_per_batch: int | None


def _maps(machine: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, state in (machine.get("States") or {}).items():
        if state.get("Type") == "Map":
            found.append((name, state))
        for inner in [state.get("ItemProcessor") or state.get("Iterator") or {}, *(state.get("Branches") or [])]:
            found.extend(_maps(inner))
    return found


def _invoked_function(machine: dict[str, Any]) -> str | None:
    for state in (machine.get("States") or {}).values():
        if state.get("Type") == "Task":
            resource = state.get("Resource", "")
            target = (state.get("Parameters") or {}).get("FunctionName") if resource == LAMBDA_INVOKE else resource
            if isinstance(target, str):
                return function_name_of(target)
    return None


def fan_out(app: App, state_machine: str | None = None) -> FanOut:
    """The app's Distributed Map and its worker.

    Raises:
        DefinitionFileError: no Distributed Map invoking a function of the template.
    """
    spec = app.state_machine(state_machine)
    definition = json.loads(substitute(spec.definition, spec.substitutions))
    for name, state in _maps(definition):
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        config = processor.get("ProcessorConfig") or {}
        if config.get("Mode") != "DISTRIBUTED":
            continue
        target = _invoked_function(processor)
        worker = next((fn for fn in app.functions.values() if fn.name == target), None)
        if worker is None:
            continue
        batcher = state.get("ItemBatcher") or {}
        return FanOut(state=name, function=worker.name, memory_mb=worker.memory_mb, timeout_s=worker.timeout_s,
                      arch=worker.architectures[0], reserved_concurrency=worker.reserved_concurrency,
                      max_concurrency=state.get("MaxConcurrency"), express=config.get("ExecutionType") == "EXPRESS",
                      items_per_batch=batcher.get("MaxItemsPerBatch"))
    raise DefinitionFileError(f"{app.path}: state machine {spec.logical_id!r} has no Distributed Map invoking one of "
                              "the template's functions; `simulate` models that fan-out only")
