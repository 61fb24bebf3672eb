"""The Map state, INLINE and DISTRIBUTED: items, ItemSelector, batching, concurrency, tolerance, Map Runs.

AWS rules this module follows (Step Functions developer guide):

- Field order (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-fields-dist-map.html):
  items (ItemsPath or ItemReader) -> ItemSelector, applied to EACH item -> ItemBatcher, which groups the
  selected items into ``{"Items": [...], "BatchInput": ...}`` child inputs.
- Failure threshold (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html):
  the Map Run fails with ``States.ExceedToleratedFailureThreshold`` when the failed or timed-out items
  exceed ToleratedFailureCount OR their share of all items exceeds ToleratedFailurePercentage (either one);
  with neither, one failed item fails it. Items are counted one by one, also inside batches.
  The ``...Path`` forms must resolve to a number (percentage 0-100); they, and MaxConcurrency(Path), are
  checked before the Map Run starts.
- Map Run (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-examine-map-run.html): the run's
  ARN is ``mapRun:MACHINE/LABEL:ID``; without a Label, Step Functions generates one (a UUID). Item counts
  and execution counts are kept separately (DescribeMapRun ``itemCounts`` / ``executionCounts``).
  History: MapStateStarted (``length`` 0 when items come from an ItemReader, which the Map Run reads),
  MapRunStarted, then MapRunSucceeded, MapRunFailed or MapRunAborted (the execution stopped).
- EXPRESS children (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-standard-vs-express.html):
  at most 5 minutes each (past it: ``States.Timeout``, counted as a failed item), at-least-once
  semantics, billed per request and per GB-second (duration rounded up to 100 ms, memory in 64 MB steps)
  instead of per state transition. The run record keeps what that bill needs.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from emulator.contracts import aws
import emulator.stepfunctions.errors as E
from emulator.stepfunctions.expressions import is_expression
from emulator.stepfunctions.history import as_json
from emulator.stepfunctions.item_reader import read_from_s3
from emulator.stepfunctions.paths import evaluate
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step
from emulator.stepfunctions.result_writer import compact, write_results

# Resolves a payload template (ItemSelector, BatchInput) in the state's query language, given a context object.
Template = Callable[[Any, dict], Any]

DISTRIBUTED_MAX_CONCURRENCY = aws.MAX_MAP_CONCURRENCY
EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"
# Express duration billing: rounded up to 100 ms, memory in 64 MB chunks (https://aws.amazon.com/step-functions/pricing/).
EXPRESS_BILLING_STEP_S = 0.1
EXPRESS_MEMORY_CHUNK_MB = 64
# Opt-in chaos knob: the probability that an EXPRESS child runs a second time (at-least-once delivery).
EXPRESS_REDELIVERY_ENV = "LAMBDATWIN_EXPRESS_REDELIVERY"


def _setting(step: Step, field: str, *, integer: bool, maximum: float | None = None) -> float | None:
    """A numeric Map field: literal (checked with the definition), ``...Path`` or a JSONata expression;
    a bad computed value is ``States.Runtime``."""
    state = step.state
    if field in state and not is_expression(state[field]):
        return state[field]
    if field not in state and f"{field}Path" not in state:
        return None
    value = step.lang.value(step, field)
    bad = not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0
    bad = bad or (integer and value != int(value)) or (maximum is not None and value > maximum)
    if bad:
        kind = "a non-negative integer" if integer else f"a number between 0 and {maximum:g}"
        source = f"{field}Path {state[field + 'Path']!r}" if f"{field}Path" in state else f"{field} {state[field]!r}"
        raise E.StatesError(E.RUNTIME, f"state {step.name!r}: {source} gave {value!r}; expected {kind}")
    return int(value) if integer else value


def select_and_batch(state: dict, items: list[Any], data: Any, ctx: dict, template: Template,
                     variables: Any = None) -> list[tuple[Any, int]]:
    """Child inputs with the number of items each carries: ItemSelector per item, then ItemBatcher
    (its ...Path fields read the state input, the context or variables)."""
    selector = state.get("ItemSelector", state.get("Parameters"))
    selected = []
    for index, value in enumerate(items):
        item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": value}}}
        selected.append(template(selector, item_ctx) if selector is not None else value)
    batcher = state.get("ItemBatcher")
    if batcher is None:
        return [(value, 1) for value in selected]
    max_items = batcher.get("MaxItemsPerBatch") or (evaluate(batcher["MaxItemsPerBatchPath"], data, ctx, variables) if "MaxItemsPerBatchPath" in batcher else None)
    max_bytes = batcher.get("MaxInputBytesPerBatch") or (evaluate(batcher["MaxInputBytesPerBatchPath"], data, ctx, variables) if "MaxInputBytesPerBatchPath" in batcher else aws.MAX_PAYLOAD_BYTES)
    batch_input = template(batcher["BatchInput"], ctx) if "BatchInput" in batcher else None
    batches: list[list[Any]] = []
    size = 0
    for value in selected:
        value_size = len(as_json(value))
        if not batches or (max_items and len(batches[-1]) >= max_items) or (batches[-1] and size + value_size > max_bytes):
            batches.append([])
            size = 0
        batches[-1].append(value)
        size += value_size
    out = []
    for batch in batches:
        entry: dict[str, Any] = {"Items": batch}
        if batch_input is not None:
            entry["BatchInput"] = batch_input
        out.append((entry, len(batch)))
    return out


def _items(step: Step) -> list[Any]:
    """ItemsPath (JSONPath) or Items (JSONata) in the state's input: an array."""
    items = step.lang.items(step)
    if not isinstance(items, list):
        what = "Items" if "Items" in step.state else f"ItemsPath {step.state.get('ItemsPath', '$')!r}"
        error = E.RUNTIME if step.lang.name == "JSONPath" else E.QUERY_EVALUATION_ERROR
        raise E.StatesError(error, f"state {step.name!r}: {what} is not an array")
    return items


def default_label(state_machine_arn: str, state_name: str) -> str:
    """The label Step Functions generates for a Map state without one: a UUID (stable per machine and state)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{state_machine_arn}#{state_name}"))


def _resolved(step: Step) -> dict[str, Any]:
    """The Map state with its JSONata ItemReader/ResultWriter ``Arguments`` and ItemBatcher evaluated
    (as JSONPath ``Parameters``), so the reader and writer read one form."""
    state = dict(step.state)
    if step.lang.name == "JSONPath":
        return state
    for field in ("ItemReader", "ResultWriter"):
        if isinstance(state.get(field), dict) and "Arguments" in state[field]:
            config = {k: v for k, v in state[field].items() if k != "Arguments"}
            state[field] = {**config, "Parameters": step.lang.template(step, state[field]["Arguments"])}
    if isinstance(state.get("ItemReader"), dict) and "ReaderConfig" in state["ItemReader"]:
        state["ItemReader"] = {**state["ItemReader"], "ReaderConfig": step.lang.template(step, state["ItemReader"]["ReaderConfig"])}
    if "ItemBatcher" in state:
        state["ItemBatcher"] = step.lang.template(step, state["ItemBatcher"])
    return state


def run_map(execution: ExecutionPort, step: Step) -> Any:
    """Run the Map; returns the list of child outputs, or what ResultWriter gives."""
    data, ctx = step.input, step.ctx
    state = _resolved(step)
    processor = state.get("ItemProcessor", state.get("Iterator"))
    config = processor.get("ProcessorConfig") or {}
    distributed = config.get("Mode", "INLINE") == "DISTRIBUTED"
    machine = {k: v for k, v in processor.items() if k != "ProcessorConfig"}

    def template(value: Any, item_ctx: dict) -> Any:
        return step.lang.template(step, value, item_ctx)

    max_concurrency = int(_setting(step, "MaxConcurrency", integer=True) or 0)
    if not distributed:
        inputs = [value for value, _ in select_and_batch(state, _items(step), data, ctx, template, step.variables)]
        workers = max(1, min(len(inputs), max_concurrency or len(inputs) or 1))
        started = execution.history.add("MapStateStarted", {"length": len(inputs)})
        return _run_inline(execution, step, machine, inputs, workers, started)
    tolerance = (_setting(step, "ToleratedFailurePercentage", integer=False, maximum=100),
                 _setting(step, "ToleratedFailureCount", integer=True))
    items = None if "ItemReader" in state else _items(step)
    execution.history.add("MapStateStarted", {"length": 0 if items is None else len(items)})
    run = MapRun(execution, step, state, machine, config.get("ExecutionType", "STANDARD"),
                 min(max_concurrency or DISTRIBUTED_MAX_CONCURRENCY, DISTRIBUTED_MAX_CONCURRENCY), tolerance)
    return run.run(items, data, ctx, template)


def run_map_state(execution: ExecutionPort, step: Step) -> Outcome:
    """The Map runner of the state table."""
    return Outcome(run_map(execution, step))


def _run_inline(execution: ExecutionPort, step: Step, machine: dict, inputs: list[Any], workers: int,
                started: int) -> list[Any]:
    """Run the iterations; each MapIterationStarted follows MapStateStarted (``started``)."""
    name = step.name
    results: list[Any] = [None] * len(inputs)
    failure: list[E.StatesError] = []
    cancel = threading.Event()  # a failed iteration stops the others before their next state

    def run(index: int) -> None:
        if failure or execution.stop.is_set():
            return
        execution.history.add("MapIterationStarted", {"name": name, "index": index}, previous=started)
        try:
            results[index] = execution.run_machine(machine, inputs[index], {"Index": index, "Value": inputs[index]}, step,
                                                   cancel)
            execution.history.add("MapIterationSucceeded", {"name": name, "index": index})
        except E.StatesError as exc:
            if exc.error != E.RUNTIME:  # States.Runtime fails the execution at once, with no state events
                execution.history.add("MapIterationFailed", {"name": name, "index": index}, advance=False)
            failure.append(exc)
            cancel.set()
        except E.BranchStopped:
            execution.history.add("MapIterationAborted", {"name": name, "index": index})

    _run_pool(run, len(inputs), workers)
    execution.history.follow_latest()
    if failure:
        raise failure[0]  # the engine records MapStateFailed once, when no retry is left
    execution.history.add("MapStateSucceeded", advance=False)
    return results


def _run_pool(run: Any, count: int, workers: int) -> None:
    stopped: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            run(index)
        except E.ExecutionStopped as exc:
            stopped.append(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, count or 1)), thread_name_prefix="map") as pool:
        list(pool.map(guarded, range(count)))
    if stopped:
        raise stopped[0]


class MapRun:
    """One Distributed Map run: child executions, counts, tolerance, events and the run record."""

    def __init__(self, execution: ExecutionPort, step: Step, state: dict, machine: dict, execution_type: str,
                 max_concurrency: int, tolerance: tuple[float | None, int | None]) -> None:
        self.execution, self.step, self.name, self.state, self.machine = execution, step, step.name, state, machine
        self.express = execution_type == "EXPRESS"
        self.max_concurrency = max_concurrency
        self.tolerated_pct, self.tolerated_count = tolerance
        self.run_id = str(uuid.uuid4())
        self.label = state.get("Label") or default_label(execution.machine_arn, step.name)
        self.arn = aws.map_run_arn(execution.machine_name, self.label, self.run_id)
        self.children: list[dict[str, Any]] = []
        self.total_items = 0
        self._lock = threading.Lock()
        self._failed_items = 0

    # -- tolerance ------------------------------------------------------------------------
    def exceeded(self, failed_items: int) -> bool:
        """Whether ``failed_items`` (failed or timed out) is past either threshold."""
        checks = []
        if self.tolerated_pct is not None:
            checks.append(self.total_items > 0 and failed_items * 100.0 / self.total_items > self.tolerated_pct)
        if self.tolerated_count is not None:
            checks.append(failed_items > self.tolerated_count)
        return any(checks) if checks else failed_items > 0

    # -- the run ---------------------------------------------------------------------------
    def run(self, items: list[Any] | None, data: Any, ctx: dict, template: Template) -> Any:
        """Read the items (ItemReader), start the children, write results; returns the Map's result."""
        history = self.execution.history
        history.add("MapRunStarted", {"mapRunArn": self.arn})
        try:
            if items is None:
                items = read_from_s3(self.execution.s3, self.name, self.state["ItemReader"], data, ctx,
                                     self.step.variables)
            inputs = select_and_batch(self.state, items, data, ctx, template, self.step.variables)
        except E.StatesError as exc:
            self._record()
            return self._fail(exc.error, exc.cause)
        self.total_items = sum(count for _, count in inputs)
        self.children = [{"index": i, "input": value, "items": count, "status": "PENDING"}
                         for i, (value, count) in enumerate(inputs)]
        try:
            _run_pool(self._run_child, len(inputs), self.max_concurrency)
        except E.ExecutionStopped:
            for child in self.children:
                if child["status"] in ("PENDING", "RUNNING"):
                    child["status"] = "ABORTED"
            self._record()
            history.add("MapRunAborted")
            raise
        record = self._record()
        writer = self.state.get("ResultWriter")
        result = None
        if writer is not None:
            try:
                result = write_results(self.execution.s3, self.name, writer, self.arn, self.run_id,
                                       aws.state_machine_arn(self._child_machine()), self.children, data, ctx)
            except E.StatesError as exc:
                return self._fail(exc.error, exc.cause)
            if "Resource" in writer:
                record["result_writer"] = result["ResultWriterDetails"]
                written = [c for c in self.children if c["status"] != "ABORTED"]
                record["item_counts"]["resultsWritten"] = sum(c["items"] for c in written)
                record["execution_counts"]["resultsWritten"] = sum(1 for c in written if "start" in c)
        if self.exceeded(self._failed_items):
            return self._fail(E.EXCEED_TOLERATED, EXCEEDED_CAUSE)
        # As AWS records: MapStateSucceeded follows MapRunSucceeded, MapStateExited follows MapRunStarted.
        run_succeeded = history.add("MapRunSucceeded", advance=False)
        history.add("MapStateSucceeded", previous=run_succeeded, advance=False)
        return result if writer is not None else compact(self.children)

    def _fail(self, error: str, cause: str) -> Any:
        self.execution.history.add("MapRunFailed", {"error": error, "cause": cause})
        raise E.StatesError(error, cause)

    def _child_machine(self) -> str:
        """The children's state machine name: ``MACHINE/LABEL``."""
        return f"{self.execution.machine_name}/{self.label}"

    def _child_arn(self, child_name: str) -> str:
        build = aws.express_execution_arn if self.express else aws.execution_arn
        return build(self._child_machine(), child_name)

    # -- one child ------------------------------------------------------------------------------
    def _run_child(self, index: int) -> None:
        child = self.children[index]
        with self._lock:
            abort = self.exceeded(self._failed_items)
        if abort or self.execution.stop.is_set():
            child["status"] = "ABORTED"  # never started: the run failed or stopped first
            return
        child["status"] = "RUNNING"
        attempts = 2 if self.express and self.execution.rng.random() < _redelivery_rate() else 1
        for _ in range(attempts):  # at-least-once: a redelivered EXPRESS child runs again, from the start
            self._attempt(child)
        if child["status"] in ("FAILED", "TIMED_OUT"):
            with self._lock:
                self._failed_items += child["items"]

    def _attempt(self, child: dict[str, Any]) -> None:
        child_name = str(uuid.uuid4())
        arn = self._child_arn(child_name)
        child.update(name=child_name, execution_arn=arn, start=self.execution.clock.now(),
                     execution_type="EXPRESS" if self.express else "STANDARD")
        child.setdefault("attempts", []).append(child_name)
        run = self.execution.spawn_child(self.machine, child["input"], name=child_name, arn=arn,
                                         item={"Index": child["index"], "Value": child["input"]}, parent=self.step,
                                         max_duration_s=aws.EXPRESS_MAX_DURATION_S if self.express else None)
        child.update(start=run.start, stop=run.stop, history=run.history)
        if self.express:
            child["billed_duration_s"] = child.get("billed_duration_s", 0.0) + _express_billed_seconds(run.stop - run.start)
        if run.status == "ABORTED":
            self.execution.check_running()  # the parent stopped or timed out: unwind with that reason
            raise E.ExecutionStopped("stopped")
        child["status"] = run.status
        if run.status == "SUCCEEDED":
            child["output"] = run.output
        else:
            child.update(error=run.error, cause=run.cause)

    # -- bookkeeping --------------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        """The map run record (DescribeMapRun's counts, the children, and the Express bill inputs)."""
        def counts(weight: Any) -> dict[str, int]:
            out = {"total": 0, "pending": 0, "running": 0, "succeeded": 0, "failed": 0, "timedOut": 0,
                   "aborted": 0, "resultsWritten": 0, "failuresNotRedrivable": 0, "pendingRedrive": 0}
            key = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
                   "TIMED_OUT": "timedOut", "ABORTED": "aborted"}
            for child in self.children:
                n = weight(child)
                out["total"] += n
                out[key[child["status"]]] += n
            return out

        started = [c for c in self.children if "start" in c]
        record: dict[str, Any] = {
            "map_run_arn": self.arn, "state": self.name, "label": self.label,
            "execution_type": "EXPRESS" if self.express else "STANDARD", "max_concurrency": self.max_concurrency,
            "tolerated_failure_percentage": self.tolerated_pct, "tolerated_failure_count": self.tolerated_count,
            "item_counts": counts(lambda c: c["items"]),
            "execution_counts": counts(lambda c: len(c.get("attempts", [])) if "start" in c else 0),
            "children": self.children,
        }
        if self.express:
            seconds = sum(c.get("billed_duration_s", 0.0) for c in started)
            record["express_billing"] = {
                "requests": sum(len(c["attempts"]) for c in started),
                "billed_duration_s": seconds, "memory_mb": EXPRESS_MEMORY_CHUNK_MB,
                "gb_seconds": seconds * EXPRESS_MEMORY_CHUNK_MB / 1024.0,
            }
        self.execution.record_map_run(record)
        return record


def _express_billed_seconds(duration_s: float) -> float:
    """An Express execution's billed duration: rounded up to the next 100 ms."""
    return math.ceil(round(max(0.0, duration_s) / EXPRESS_BILLING_STEP_S, 6)) * EXPRESS_BILLING_STEP_S


def _redelivery_rate() -> float:
    """``LAMBDATWIN_EXPRESS_REDELIVERY`` (0-1, default 0): how often an EXPRESS child is delivered twice."""
    try:
        return min(1.0, max(0.0, float(os.environ.get(EXPRESS_REDELIVERY_ENV, "0") or 0)))
    except ValueError:
        return 0.0


__all__ = ["run_map", "select_and_batch", "default_label", "MapRun"]
