"""The data flow through a state in each query language: JSONPath and JSONata.

JSONPath (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html):
``InputPath`` selects the effective input (JSON null: ``{}``); ``Parameters`` builds the
task/branch input from it; the result goes through ``ResultSelector``, then ``ResultPath``
places it into the *raw* state input (null: the raw input unchanged), and ``OutputPath``
selects the state's output. A Catch's ``ResultPath`` places the error output
``{"Error", "Cause"}`` into the raw input. ``Assign`` values ending ``.$`` read the state's
result (after ResultSelector) as ``$``, or the error output in a Catch.

JSONata (https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html):
``Arguments`` is the task/branch input, ``Output`` the state's output (default: the result for
Task/Parallel/Map, the input for the others; the error output in a Catch); expressions read
``$states.input``, ``$states.result``, ``$states.errorOutput``, ``$states.context``.

Variables (https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html):
``Assign`` and ``Output`` both see the variables as they were when the state was entered; the
new values are set together after both are evaluated. One variable, and one ``Assign`` in
total, may hold at most 256 KiB; an execution's variables at most 10 MiB.
"""

from __future__ import annotations

import json
from typing import Any

from emulator.contracts import aws
import emulator.stepfunctions.errors as E
from emulator.stepfunctions.choice import evaluate_rule
from emulator.stepfunctions.expressions import resolve
from emulator.stepfunctions.intrinsics import call_intrinsic, is_intrinsic
from emulator.stepfunctions.paths import apply_input_path, apply_result_path, evaluate
from emulator.stepfunctions.port import Language, Step
from emulator.stepfunctions.templates import resolve_template

JSONPATH = "JSONPath"
JSONATA = "JSONata"
MAX_VARIABLE_BYTES = 256 * 1024  # one variable, and one Assign in total
MAX_EXECUTION_VARIABLE_BYTES = 10 * 1024 * 1024


def size_of(value: Any) -> int:
    """A value's size as Step Functions counts it: its UTF-8 JSON text."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def check_payload(value: Any, what: str, cause: str | None = None) -> None:
    """Raise States.DataLimitExceeded when ``value`` is over the 256 KiB payload quota
    (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); ``what`` is the
    state's name, or a description such as "execution input"."""
    if size_of(value) > aws.MAX_PAYLOAD_BYTES:
        raise E.StatesError(E.DATA_LIMIT_EXCEEDED, cause or f"The state/task '{what}' returned a result with a size "
                                                            "exceeding the maximum number of bytes service limit.")


def check_assignments(values: dict[str, Any], state: str) -> None:
    """The per-variable and per-Assign size quotas."""
    for name, value in values.items():
        if size_of(value) > MAX_VARIABLE_BYTES:
            raise E.StatesError(E.DATA_LIMIT_EXCEEDED, f"State {state!r}: variable ${name} exceeds "
                                                       f"the {MAX_VARIABLE_BYTES}-byte limit of a variable")
    if values and size_of(values) > MAX_VARIABLE_BYTES:
        raise E.StatesError(E.DATA_LIMIT_EXCEEDED, f"State {state!r}: the Assign field's values exceed "
                                                   f"the {MAX_VARIABLE_BYTES}-byte limit of one Assign")


def _index_in(state: dict[str, Any], field: str, element: Any) -> str:
    """``Choices[1]``: where a rule or catcher sits in its state, for JSONata error causes."""
    index = next((i for i, e in enumerate(state.get(field, [])) if e is element), 0)
    return f"{field}[{index}]"


class JSONPathLanguage:
    """JSONPath data flow (the default query language)."""

    name = JSONPATH

    def effective_input(self, step: Step) -> Any:
        """The state input after ``InputPath``."""
        return apply_input_path(step.state.get("InputPath", "$"), step.raw, step.ctx, step.variables)

    def arguments(self, step: Step) -> Any:
        """``Parameters`` resolved against the effective input, or the effective input."""
        if "Parameters" in step.state:
            return resolve_template(step.state["Parameters"], step.input, step.ctx, step.variables)
        return step.input

    def value(self, step: Step, field: str, default: Any = None) -> Any:
        """``field`` as given, or its ``fieldPath`` read from the effective input."""
        if field in step.state:
            return step.state[field]
        if f"{field}Path" in step.state:
            return evaluate(step.state[f"{field}Path"], step.input, step.ctx, step.variables, f"{field}Path")
        return default

    def template(self, step: Step, template: Any, context: dict[str, Any] | None = None) -> Any:
        """A payload template against the effective input."""
        return resolve_template(template, step.input, step.ctx if context is None else context, step.variables)

    def items(self, step: Step) -> Any:
        """``ItemsPath`` (default ``$``) in the effective input."""
        return evaluate(step.state.get("ItemsPath", "$"), step.input, step.ctx, step.variables, "ItemsPath")

    def path(self, step: Step, path: str, data: Any = None, field: str = "v") -> Any:
        """A path or intrinsic against ``data`` (default: the effective input); ``field``
        (e.g. ``ErrorPath``) is named in the cause when the path is missing."""
        data = step.input if data is None else data
        if is_intrinsic(path):
            return call_intrinsic(path, data, step.ctx, step.variables)
        return evaluate(path, data, step.ctx, step.variables, field)

    def condition(self, step: Step, rule: dict[str, Any]) -> bool:
        """Whether a Choice rule matches."""
        return evaluate_rule(rule, step.input, step.ctx, step.variables)

    def shape(self, step: Step, result: Any, shapes_result: bool) -> Any:
        """ResultSelector, ResultPath, OutputPath: the state's output."""
        output = result
        if shapes_result:
            output = apply_result_path(step.state.get("ResultPath", "$"), step.raw, self.selected(step, result))
        return apply_input_path(step.state.get("OutputPath", "$"), output, step.ctx, step.variables, "OutputPath")

    def selected(self, step: Step, result: Any) -> Any:
        """The result after ``ResultSelector``."""
        if "ResultSelector" in step.state:
            return resolve_template(step.state["ResultSelector"], result, step.ctx, step.variables)
        return result

    def assignments(self, step: Step, assign: Any, result: Any, shapes_result: bool) -> dict[str, Any]:
        """An Assign object's values: ``$`` is the state's result (after ResultSelector)."""
        if assign is None:
            return {}
        data = self.selected(step, result) if shapes_result else result
        return resolve_template(assign, data, step.ctx, step.variables)

    def caught(self, step: Step, catcher: dict[str, Any], error_output: dict[str, Any]) -> Any:
        """A Catcher's output: the error output placed by its ResultPath."""
        return apply_result_path(catcher.get("ResultPath", "$"), step.raw, error_output)

    def caught_assignments(self, step: Step, catcher: dict[str, Any], error_output: dict[str, Any]) -> dict[str, Any]:
        """A Catcher's Assign: ``$`` is the error output."""
        if "Assign" not in catcher:
            return {}
        return resolve_template(catcher["Assign"], error_output, step.ctx, step.variables)


class JSONataLanguage:
    """JSONata data flow (``"QueryLanguage": "JSONata"``)."""

    name = JSONATA

    def bindings(self, step: Step, **states: Any) -> dict[str, Any]:
        """Variables plus ``$states`` (input, context, and result/errorOutput when given)."""
        return {**step.variables.all(), "states": {"input": step.raw, "context": step.ctx, **states}}

    def effective_input(self, step: Step) -> Any:
        """JSONata states have no InputPath: the raw input."""
        return step.raw

    def arguments(self, step: Step) -> Any:
        """``Arguments`` evaluated, or the state input."""
        if "Arguments" in step.state:
            return resolve(step.state["Arguments"], self.bindings(step), "Arguments")
        return step.raw

    def value(self, step: Step, field: str, default: Any = None) -> Any:
        """``field``, evaluated when it is an expression."""
        if field not in step.state:
            return default
        return resolve(step.state[field], self.bindings(step), field)

    def template(self, step: Step, template: Any, context: dict[str, Any] | None = None) -> Any:
        """A template with expressions, e.g. ItemSelector with ``$states.context.Map.Item``."""
        bindings = self.bindings(step)
        if context is not None:
            bindings["states"]["context"] = context
        return resolve(template, bindings)

    def items(self, step: Step) -> Any:
        """``Items`` (an array or an expression), default the state input."""
        if "Items" not in step.state:
            return step.raw
        return resolve(step.state["Items"], self.bindings(step), "Items")

    def path(self, step: Step, path: str, data: Any = None, field: str = "v") -> Any:
        """An expression (JSONata states have no paths)."""
        return resolve(path, self.bindings(step))

    def condition(self, step: Step, rule: dict[str, Any]) -> bool:
        """A Choice rule's ``Condition`` (must be a boolean)."""
        value = resolve(rule["Condition"], self.bindings(step), f"{_index_in(step.state, 'Choices', rule)}/Condition")
        if not isinstance(value, bool):
            raise E.StatesError(E.QUERY_EVALUATION_ERROR,
                                f"State {step.name!r}: the Condition {rule['Condition']!r} returned {value!r}, not a boolean")
        return value

    def shape(self, step: Step, result: Any, shapes_result: bool) -> Any:
        """``Output`` evaluated with ``$states.result``, or the default output."""
        if "Output" not in step.state:
            return result
        extra = {"result": result} if shapes_result else {}
        return resolve(step.state["Output"], self.bindings(step, **extra), "Output")

    def assignments(self, step: Step, assign: Any, result: Any, shapes_result: bool) -> dict[str, Any]:
        """An Assign object evaluated with ``$states.result`` (Task, Parallel, Map)."""
        if assign is None:
            return {}
        extra = {"result": result} if shapes_result else {}
        return resolve(assign, self.bindings(step, **extra), "Assign")

    def caught(self, step: Step, catcher: dict[str, Any], error_output: dict[str, Any]) -> Any:
        """A Catcher's ``Output`` with ``$states.errorOutput``, default the error output."""
        if "Output" not in catcher:
            return error_output
        return resolve(catcher["Output"], self.bindings(step, errorOutput=error_output),
                       f"{_index_in(step.state, 'Catch', catcher)}/Output")

    def caught_assignments(self, step: Step, catcher: dict[str, Any], error_output: dict[str, Any]) -> dict[str, Any]:
        """A Catcher's ``Assign`` with ``$states.errorOutput``."""
        if "Assign" not in catcher:
            return {}
        return resolve(catcher["Assign"], self.bindings(step, errorOutput=error_output),
                       f"{_index_in(step.state, 'Catch', catcher)}/Assign")


LANGUAGES: dict[str, Language] = {JSONPATH: JSONPathLanguage(), JSONATA: JSONataLanguage()}

