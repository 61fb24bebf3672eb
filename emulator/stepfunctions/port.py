"""The seam between the interpreter and the state runners.

A state runner (Task, Pass, Choice, Wait, Succeed, Fail, Parallel, Map) sees the running
execution only through :class:`ExecutionPort`: its history, clock, invoker and S3 client,
and the two ways to run nested work that the ASL defines
(https://docs.aws.amazon.com/step-functions/latest/dg/state-map.html,
https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html):

- ``run_machine``: a Parallel branch or an INLINE Map iteration, recorded in *this*
  execution's history;
- ``spawn_child``: a DISTRIBUTED Map child execution, with its own history and ARN, whose
  Map Run is recorded with ``record_map_run``.

Runners never import the engine; the engine implements this protocol. A state type is one
:class:`StateType` entry in the table of ``emulator.stepfunctions.registry``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from emulator.contracts.lambdas import LambdaInvoker
from emulator.stepfunctions.history import History


@dataclass
class ExecutionResult:
    """What an execution ended with, plus its history and map runs (also a Map child execution's end)."""

    name: str
    execution_arn: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start: float = 0.0
    stop: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    map_runs: list[dict[str, Any]] = field(default_factory=list)


class Variables(Protocol):
    """A variable scope (``Assign``): reads see outer scopes, writes stay in this one."""

    def get(self, name: str) -> Any: ...

    def all(self) -> dict[str, Any]: ...


class ExecutionPort(Protocol):
    """What a state runner may use of the execution it runs in."""

    history: History
    clock: Any
    invoker: LambdaInvoker
    s3: Any
    rng: random.Random
    stop: threading.Event
    machine_name: str
    machine_arn: str

    def check_running(self) -> None:
        """Raise ExecutionStopped when the execution was stopped or is past its deadline."""

    def sleep(self, seconds: float) -> None:
        """Sleep on the execution's clock, waking early (and unwinding) when it stops."""

    def run_machine(self, machine: dict[str, Any], data: Any, item: dict[str, Any] | None = None,
                    parent: "Step | None" = None, cancel: threading.Event | None = None) -> Any:
        """Run a nested machine (branch, inline iteration) from StartAt to its end; returns its output.

        ``parent`` is the Map/Parallel step: the nested states read its variables (in an inner
        scope); nested states without a QueryLanguage take the state machine's (not the Map's
        or Parallel's). When ``cancel`` is set the machine stops before
        its next state with BranchStopped.
        """

    def spawn_child(self, machine: dict[str, Any], data: Any, *, name: str, arn: str, item: dict[str, Any],
                    parent: "Step | None" = None, max_duration_s: float | None = None) -> ExecutionResult:
        """Run a child execution with its own history (never raises for the child's runtime errors).

        The child's states take the state machine's query language and none of the parent's variables; it ends
        TIMED_OUT past ``max_duration_s``, and ABORTED (history kept) when the parent stops, after
        which the caller raises ExecutionStopped.
        """

    def record_map_run(self, record: dict[str, Any]) -> None:
        """Keep a Distributed Map Run's record in the execution's result."""


class Language(Protocol):
    """A query language's data flow (JSONPath or JSONata) as the runners need it."""

    name: str

    def arguments(self, step: "Step") -> Any:
        """The task/branch input: ``Parameters`` (JSONPath) or ``Arguments`` (JSONata)."""

    def value(self, step: "Step", field: str, default: Any = None) -> Any:
        """A scalar field that may be computed (``...Path`` in JSONPath, ``{% %}`` in JSONata)."""

    def template(self, step: "Step", template: Any, context: dict[str, Any] | None = None) -> Any:
        """A payload template (ItemSelector, ItemReader Parameters ...) resolved for this state."""

    def items(self, step: "Step") -> Any:
        """A Map's items in the state's input: ``ItemsPath`` or ``Items``."""

    def path(self, step: "Step", path: str, data: Any = None, field: str = "v") -> Any:
        """A path or intrinsic (JSONPath) or an expression (JSONata)."""

    def condition(self, step: "Step", rule: dict[str, Any]) -> bool:
        """Whether a Choice rule matches."""

    def effective_input(self, step: "Step") -> Any:
        """The input the runner works on (after InputPath in JSONPath)."""

    def shape(self, step: "Step", result: Any, shapes_result: bool) -> Any:
        """The state's output from the runner's result."""

    def assignments(self, step: "Step", assign: Any, result: Any, shapes_result: bool) -> dict[str, Any]:
        """An Assign block's values."""

    def caught(self, step: "Step", catcher: dict[str, Any], error_output: dict[str, Any]) -> Any:
        """A Catcher's output."""

    def caught_assignments(self, step: "Step", catcher: dict[str, Any], error_output: dict[str, Any]) -> dict[str, Any]:
        """A Catcher's Assign values."""


@dataclass
class Step:
    """One attempt at one state: what a runner gets.

    ``raw`` is the state's input as it arrived; ``input`` the effective input (after
    ``InputPath`` in JSONPath, the raw input in JSONata); ``ctx`` the context object (``$$``).
    """

    name: str
    state: dict[str, Any]
    raw: Any
    input: Any
    ctx: dict[str, Any]
    lang: Language
    variables: Variables
    item: dict[str, Any] | None = None


@dataclass
class Outcome:
    """What a runner returns: its result, and the next state when the runner chooses it (Choice, Succeed)."""

    result: Any
    next: str | None = None
    chooses_next: bool = False
    assign: Any = None  # a matched Choice rule's own Assign, applied after the state's
    overrides: dict[str, Any] = field(default_factory=dict)  # a matched JSONata Choice rule's Output


Runner = Callable[[ExecutionPort, Step], Outcome]


class ValidationScope(Protocol):
    """What a validator sees: the sibling states, and a way to validate nested machines."""

    states: Mapping[str, Any]
    language: str  # the state's query language: JSONPath | JSONata

    def validate_machine(self, machine: Any, where: str, language: str, inherit_variables: bool = True) -> None:
        """Validate a nested machine; ``inherit_variables`` False for a Distributed Map's (no outer variables)."""


Validator = Callable[[str, dict[str, Any], ValidationScope], None]


@dataclass(frozen=True)
class StateType:
    """One state type: how to run it, which fields it may have, and how to check it.

    ``fields`` maps a query language to the fields a state of this type may carry in it.
    Retry/Catch apply when ``Retry`` is among them; ResultSelector/ResultPath/Output shaping
    applies to the runner's result when ``shapes_result`` is set.
    """

    runner: Runner
    fields: Mapping[str, frozenset[str]]
    validator: Validator | None = None
    shapes_result: bool = True
    failed_event: str | None = None  # recorded once when the state finally fails (after its retries)
