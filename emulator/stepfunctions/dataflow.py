"""The JSONPath query language's data flow through a state.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html):
``InputPath`` selects the effective input (JSON null: ``{}``); ``Parameters`` builds the
task/branch input from it; the result goes through ``ResultSelector``, then ``ResultPath``
places it into the *raw* state input (null: the raw input unchanged), and ``OutputPath``
selects the state's output. A Catch's ``ResultPath`` places the error output
``{"Error", "Cause"}`` into the raw input.
"""

from __future__ import annotations

from typing import Any

from emulator.stepfunctions.paths import apply_input_path, apply_result_path, evaluate
from emulator.stepfunctions.port import Step
from emulator.stepfunctions.templates import resolve_template

JSONPATH = "JSONPath"


class JSONPathLanguage:
    """JSONPath data flow (the default query language)."""

    name = JSONPATH

    def effective_input(self, step: Step) -> Any:
        """The state input after ``InputPath``."""
        return apply_input_path(step.state.get("InputPath", "$"), step.raw, step.ctx)

    def arguments(self, step: Step) -> Any:
        """``Parameters`` resolved against the effective input, or the effective input."""
        if "Parameters" in step.state:
            return resolve_template(step.state["Parameters"], step.input, step.ctx)
        return step.input

    def value(self, step: Step, field: str, default: Any = None) -> Any:
        """``field`` as given, or its ``fieldPath`` read from the effective input."""
        if field in step.state:
            return step.state[field]
        if f"{field}Path" in step.state:
            return evaluate(step.state[f"{field}Path"], step.input, step.ctx)
        return default

    def template(self, step: Step, template: Any, context: dict[str, Any] | None = None) -> Any:
        """A payload template against the effective input."""
        return resolve_template(template, step.input, step.ctx if context is None else context)

    def items(self, step: Step) -> Any:
        """``ItemsPath`` (default ``$``) in the effective input."""
        return evaluate(step.state.get("ItemsPath", "$"), step.input, step.ctx)

    def path(self, step: Step, path: str, data: Any = None) -> Any:
        """A path against ``data`` (default: the effective input)."""
        return evaluate(path, step.input if data is None else data, step.ctx)

    def shape(self, step: Step, result: Any, shapes_result: bool) -> Any:
        """ResultSelector, ResultPath, OutputPath: the state's output."""
        output = result
        if shapes_result:
            if "ResultSelector" in step.state:
                result = resolve_template(step.state["ResultSelector"], result, step.ctx)
            output = apply_result_path(step.state.get("ResultPath", "$"), step.raw, result)
        return apply_input_path(step.state.get("OutputPath", "$"), output, step.ctx)

    def caught(self, step: Step, catcher: dict[str, Any], error: str, cause: str) -> Any:
        """A Catcher's output: the error output placed by its ResultPath."""
        return apply_result_path(catcher.get("ResultPath", "$"), step.raw, {"Error": error, "Cause": cause})


LANGUAGES = {JSONPATH: JSONPathLanguage()}
