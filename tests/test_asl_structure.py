"""The ASL engine's structure (issue 11): no import cycles, one seam per extension."""

from __future__ import annotations

import ast
import pathlib
import random

from emulator.stepfunctions import StateMachine, VirtualClock
from emulator.stepfunctions.engine import Execution
from emulator.stepfunctions.history import History
from emulator.stepfunctions.registry import STATE_TYPES

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "emulator" / "stepfunctions"


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("emulator.stepfunctions."))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emulator.stepfunctions"):
                if node.module == "emulator.stepfunctions":
                    deps.update(alias.name for alias in node.names)
                else:
                    deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_import_cycle_in_the_engine():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [module])}")
        if state.get(module) == 2 or module not in graph:
            return
        state[module] = 1
        for dep in graph[module]:
            if module != "__init__":
                visit(dep, path + [module])
        state[module] = 2

    for module in graph:
        visit(module, [])


def test_no_function_level_imports():
    for path in PACKAGE.glob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{path.name}:{fn.name} imports inside a function"


def test_runners_do_not_import_the_engine():
    graph = _imports()
    for module in ("map_state", "parallel", "task", "flow"):
        assert "engine" not in graph[module], module


def test_a_state_type_is_one_table_entry():
    """The table drives both validation (fields) and running (runner)."""
    assert set(STATE_TYPES) == {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
    for kind, entry in STATE_TYPES.items():
        assert callable(entry.runner) and "Type" in entry.fields["JSONPath"], kind
    result = StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}).execute(
        None, invoker=None)
    assert result.output == 1


def test_spawn_child_times_out_past_its_max_duration_and_keeps_its_own_history():
    """The port's spawn_child: a child past max_duration_s ends TIMED_OUT (States.Timeout) in its own history."""
    sm = StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    clock = VirtualClock()
    parent = Execution(sm, {}, invoker=None, s3_client=None, name="p", history=History(clock=clock), clock=clock,
                       rng=random.Random(0))
    waits = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    run = parent.spawn_child(waits, {}, name="c", arn="arn:c", item={"Index": 0, "Value": {}}, max_duration_s=300)
    assert run.status == "TIMED_OUT" and run.error == "States.Timeout"
    assert run.history[-1]["type"] == "ExecutionTimedOut" and parent.history.events == []
    done = parent.spawn_child(sm.definition, {"x": 1}, name="d", arn="arn:d", item={"Index": 1, "Value": {}})
    assert done.status == "SUCCEEDED" and done.output == {"x": 1}
    parent.stop.set()
    aborted = parent.spawn_child(waits, {}, name="e", arn="arn:e", item={"Index": 2, "Value": {}}, max_duration_s=300)
    assert aborted.status == "ABORTED" and aborted.history[-1]["type"] == "ExecutionAborted"
