"""The Step Functions API (awsJson1.0, ``X-Amz-Target: AWSStepFunctions.<Operation>``) on the repository's ASL engine.

Operations and their documented request/response members and errors:
https://docs.aws.amazon.com/step-functions/latest/apireference/API_Operations.html

Executions run in a thread each (StartExecution) or in the request (StartSyncExecution,
EXPRESS machines only, as AWS allows). History is live while an execution runs;
GetExecutionHistory pages it (default 100 events a page, at most 1,000). Each
finished execution writes its run record ``<runs dir>/<execution name>/record.json``,
the document ``lambdatwin run`` writes. Distributed Map runs become map runs
(ListMapRuns, DescribeMapRun) and their child executions are listed by
``ListExecutions(mapRunArn=...)``.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from typing import Any, Callable

import boto3

from emulator.app import record as app_record
from emulator.contracts import aws
from emulator.endpoints.core import Twin
from emulator.endpoints.wire import ApiError, epoch, page, require
from emulator.stepfunctions import DefinitionError, StateMachine
from emulator.stepfunctions.engine import substitute

CONTENT_TYPE = "application/x-amz-json-1.0"
_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
_TYPES = ("STANDARD", "EXPRESS")


def _check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError("InvalidName", f"Invalid Name: '{name}' (1-80 characters, no whitespace, brackets, wildcards or punctuation)")
    return name


def _json_text(value: Any, field: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        raise ApiError("InvalidExecutionInput", f"Invalid {field}: not valid JSON") from None


def _compile(definition: str) -> StateMachine:
    try:
        return StateMachine(definition, name="validation")
    except DefinitionError as exc:
        raise ApiError("InvalidDefinition", f"Invalid State Machine Definition: '{exc}'") from None


class StepFunctionsAPI:
    """Handlers by operation name; see the module docstring."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            name: getattr(self, name) for name in (
                "CreateStateMachine", "UpdateStateMachine", "DescribeStateMachine", "ListStateMachines",
                "DeleteStateMachine", "StartExecution", "StartSyncExecution", "StopExecution", "DescribeExecution",
                "GetExecutionHistory", "ListExecutions", "ListMapRuns", "DescribeMapRun",
                "ValidateStateMachineDefinition", "DescribeStateMachineForExecution")
        }

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = self.operations.get(operation)
        if handler is None:
            raise ApiError("UnknownOperationException", f"Operation {operation} is not supported by lambdatwin serve")
        return handler(body)

    # -- state machines ----------------------------------------------------------------
    def _machine(self, arn: str) -> dict[str, Any]:
        return _lookup(self.twin.machines, arn, "StateMachineDoesNotExist", "State Machine Does Not Exist")

    def create_machine(self, name: str, definition: str, role_arn: str, machine_type: str = "STANDARD",
                       substitutions: dict[str, str] | None = None, replace: bool = False) -> dict[str, Any]:
        """Create (or, with ``replace``, overwrite) a state machine; used by the API and template deploys."""
        _check_name(name)
        if machine_type not in _TYPES:
            raise ApiError("ValidationException", f"Value '{machine_type}' at 'type' failed to satisfy constraint: "
                           f"Member must satisfy enum value set: [{', '.join(_TYPES)}]")
        if substitutions:
            try:
                definition = substitute(definition, substitutions)
            except DefinitionError as exc:
                raise ApiError("InvalidDefinition", str(exc)) from None
        _compile(definition)
        arn = aws.state_machine_arn(name)
        existing = self.twin.machines.get(arn)
        if existing is not None and not replace:
            if existing["definition"] == definition and existing["roleArn"] == role_arn and existing["type"] == machine_type:
                return existing  # CreateStateMachine is idempotent for identical input
            raise ApiError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
        doc = {"stateMachineArn": arn, "name": name, "definition": definition, "roleArn": role_arn,
               "type": machine_type, "status": "ACTIVE", "creationDate": existing["creationDate"] if existing else time.time(),
               "revisionId": str(uuid.uuid4())}
        self.twin.save_machine(doc)
        return doc

    def CreateStateMachine(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self.create_machine(require(body, "name"), require(body, "definition"), require(body, "roleArn"),
                                  body.get("type", "STANDARD"))
        return {"stateMachineArn": doc["stateMachineArn"], "creationDate": doc["creationDate"]}

    def UpdateStateMachine(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = dict(self._machine(require(body, "stateMachineArn")))
        if "definition" not in body and "roleArn" not in body:
            raise ApiError("MissingRequiredParameter", "Either the definition, the role ARN, the logging configuration "
                           "or the tracing configuration must be specified")
        if "definition" in body:
            _compile(body["definition"])
            doc["definition"] = body["definition"]
        doc["roleArn"] = body.get("roleArn", doc["roleArn"])
        doc["updateDate"], doc["revisionId"] = time.time(), str(uuid.uuid4())
        self.twin.save_machine(doc)
        return {"updateDate": doc["updateDate"], "revisionId": doc["revisionId"]}

    def DescribeStateMachine(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._machine(require(body, "stateMachineArn"))
        return {**{k: doc[k] for k in ("stateMachineArn", "name", "status", "definition", "roleArn", "type",
                                       "creationDate", "revisionId")},
                "loggingConfiguration": {"level": "OFF", "includeExecutionData": False}}

    def DescribeStateMachineForExecution(self, body: dict[str, Any]) -> dict[str, Any]:
        ex = self._execution(require(body, "executionArn"))
        doc = self._machine(ex["stateMachineArn"])
        return {k: doc[k] for k in ("stateMachineArn", "name", "definition", "roleArn", "revisionId")} | \
            {"updateDate": doc.get("updateDate", doc["creationDate"])}

    def ListStateMachines(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = sorted(self.twin.machines.values(), key=lambda d: d["name"])
        items, nxt = page(docs, body.get("nextToken"), body.get("maxResults"), 100, 1000)
        out: dict[str, Any] = {"stateMachines": [{k: d[k] for k in ("stateMachineArn", "name", "type", "creationDate")}
                                                 for d in items]}
        if nxt:
            out["nextToken"] = nxt
        return out

    def DeleteStateMachine(self, body: dict[str, Any]) -> dict[str, Any]:
        self.twin.delete_machine(require(body, "stateMachineArn"))
        return {}

    def ValidateStateMachineDefinition(self, body: dict[str, Any]) -> dict[str, Any]:
        text = require(body, "definition")
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            return {"result": "FAIL", "truncated": False, "diagnostics": [
                {"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION", "message": f"The definition is not valid JSON: {exc}"}]}
        try:
            StateMachine(definition)  # the engine's own definition-time validation
        except DefinitionError as exc:
            return {"result": "FAIL", "truncated": False, "diagnostics": [
                {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": str(exc)}]}
        return {"result": "OK", "diagnostics": [], "truncated": False}

    # -- executions -----------------------------------------------------------------------
    def _execution(self, arn: str) -> dict[str, Any]:
        return _lookup(self.twin.executions, arn, "ExecutionDoesNotExist", "Execution Does Not Exist")

    def _begin(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any, bool]:
        machine = self._machine(require(body, "stateMachineArn"))
        name = _check_name(body.get("name") or str(uuid.uuid4()))
        text = body.get("input", "{}")
        if len(str(text).encode()) > aws.MAX_PAYLOAD_BYTES:
            raise ApiError("InvalidExecutionInput", f"The input is larger than the {aws.MAX_PAYLOAD_BYTES} bytes "
                           "Step Functions accepts")
        execution_input = _json_text(text, "input")
        express = machine["type"] == "EXPRESS"
        arn = (aws.express_execution_arn if express else aws.execution_arn)(machine["name"], name)
        with self.twin.lock:
            existing = self.twin.executions.get(arn)
            if existing is not None:
                if existing["status"] == "RUNNING" and existing["input"] == text:
                    return machine, existing, execution_input, False  # idempotent retry
                raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            doc = {"executionArn": arn, "stateMachineArn": machine["stateMachineArn"], "name": name,
                   "status": "RUNNING", "startDate": time.time(), "input": text, "history": [], "mapRuns": []}
            self.twin.executions[arn] = doc
            self.twin.stops[arn] = threading.Event()
        self.twin.save_execution(doc)
        return machine, doc, execution_input, True

    def _run(self, machine: dict[str, Any], doc: dict[str, Any], execution_input: Any) -> None:
        twin = self.twin
        invoker = app_record.RecordingInvoker(twin.service)
        s3 = boto3.client("s3", endpoint_url=twin.endpoint_url, region_name=aws.REGION,
                          aws_access_key_id="lambdatwin", aws_secret_access_key="lambdatwin")
        try:
            engine = StateMachine(machine["definition"], name=machine["name"])
            result = engine.execute(execution_input, invoker=invoker, s3_client=s3, name=doc["name"],
                                    on_event=doc["history"].append, stop=twin.stops[doc["executionArn"]],
                                    arn=doc["executionArn"])
        except Exception as exc:  # noqa: BLE001 - the server stays up; the execution fails with the reason
            doc.update(status="FAILED", stopDate=time.time(), error="States.Runtime", cause=f"lambdatwin: {exc}")
            twin.save_execution(doc)
            twin.stops.pop(doc["executionArn"], None)
            return
        doc.update(status=result.status, stopDate=result.stop, history=result.history)
        if result.status == "SUCCEEDED":
            doc["output"] = json.dumps(result.output)
        else:
            doc.update(error=result.error, cause=result.cause)
        doc["mapRuns"] = [self._map_run_doc(doc, run, machine["definition"]) for run in result.map_runs]
        for run in result.map_runs:
            for child in run.get("children", []):
                if child and child.get("execution_arn"):
                    self._store_child(doc, run, child)
        twin.save_execution(doc)
        twin.stops.pop(doc["executionArn"], None)
        functions = [twin.service.functions[n] for n in sorted({r.function for r in invoker.records})
                     if n in twin.service.functions]
        config = {"source": "lambdatwin serve", "state_machine": machine["name"],
                  "execution_input": execution_input, "endpoint": twin.endpoint_url}
        rec = app_record.execution_record(doc["name"], "local", config, functions, result, invoker.records)
        twin.logs.sync(twin.service)
        app_record.write_run(rec, twin.runs_dir, app_record.lines_of(twin.service.log_streams, invoker.records))

    def _map_run_doc(self, parent: dict[str, Any], run: dict[str, Any], machine_definition: str = "") -> dict[str, Any]:
        children = [c for c in run.get("children", []) if c]
        starts = [c["start"] for c in children if c.get("start")]
        stops = [c["stop"] for c in children if c.get("stop")]
        failed = any(e["type"] == "MapRunFailed" for e in parent["history"])
        status = "FAILED" if failed and run["item_counts"].get("failed") else "SUCCEEDED"
        label_machine = run["map_run_arn"].split(":mapRun:", 1)[1].rsplit(":", 1)[0]
        keys = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten",
                "failuresNotRedrivable", "pendingRedrive")
        item_counts = {k: run["item_counts"].get(k, 0) for k in keys}  # per item
        execution_counts = {k: run["execution_counts"].get(k, 0) for k in keys}  # per child execution
        state = _find_state(json.loads(machine_definition), run.get("state")) if machine_definition else {}
        return {"mapRunArn": run["map_run_arn"], "executionArn": parent["executionArn"],
                "stateMachineArn": aws.state_machine_arn(label_machine), "status": status,
                "startDate": min(starts) if starts else parent["startDate"],
                "stopDate": max(stops) if stops else time.time(), "maxConcurrency": run.get("max_concurrency", 0),
                "toleratedFailurePercentage": float(state.get("ToleratedFailurePercentage", 0.0)),
                "toleratedFailureCount": int(state.get("ToleratedFailureCount", 0)),
                "itemCounts": item_counts, "executionCounts": execution_counts,
                "redriveCount": 0}

    def _store_child(self, parent: dict[str, Any], run: dict[str, Any], child: dict[str, Any]) -> None:
        label_machine = run["map_run_arn"].split(":mapRun:", 1)[1].rsplit(":", 1)[0]
        doc = {"executionArn": child["execution_arn"], "stateMachineArn": aws.state_machine_arn(label_machine),
               "name": child["name"], "status": child["status"], "startDate": child.get("start", parent["startDate"]),
               "stopDate": child.get("stop"), "input": json.dumps(child.get("input")), "history": child.get("history", []),
               "mapRunArn": run["map_run_arn"], "mapRuns": []}
        if child["status"] == "SUCCEEDED":
            doc["output"] = json.dumps(child.get("output"))
        else:
            doc.update(error=child.get("error"), cause=child.get("cause"))
        with self.twin.lock:
            self.twin.executions[doc["executionArn"]] = doc
        self.twin.save_execution(doc)

    def StartExecution(self, body: dict[str, Any]) -> dict[str, Any]:
        machine, doc, execution_input, new = self._begin(body)
        if new:
            threading.Thread(target=self._run, args=(machine, doc, execution_input), daemon=True,
                             name=f"execution-{doc['name']}").start()
        return {"executionArn": doc["executionArn"], "startDate": doc["startDate"]}

    def StartSyncExecution(self, body: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(require(body, "stateMachineArn"))
        if machine["type"] != "EXPRESS":
            raise ApiError("StateMachineTypeNotSupported", "This operation is not supported by this type of state machine")
        machine, doc, execution_input, _ = self._begin(body)
        self._run(machine, doc, execution_input)
        duration_ms = max(0.0, (doc["stopDate"] - doc["startDate"]) * 1000)
        out = {k: doc[k] for k in ("executionArn", "stateMachineArn", "name", "startDate", "stopDate", "status", "input")
               if k in doc}
        out["inputDetails"] = {"included": True}
        if "output" in doc:
            out.update(output=doc["output"], outputDetails={"included": True})
        for key in ("error", "cause"):
            if doc.get(key) is not None:
                out[key] = doc[key]
        out["billingDetails"] = {"billedMemoryUsedInMB": 64,
                                 "billedDurationInMilliseconds": max(100, int(math.ceil(duration_ms / 100.0)) * 100)}
        return out

    def StopExecution(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._execution(require(body, "executionArn"))
        stop = self.twin.stops.get(doc["executionArn"])
        if stop is not None:
            stop.set()
            deadline = time.monotonic() + 10
            while doc["status"] == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.02)
            if body.get("error") or body.get("cause"):
                doc.update(error=body.get("error"), cause=body.get("cause"))
                self.twin.save_execution(doc)
        return {"stopDate": doc.get("stopDate") or time.time()}

    def DescribeExecution(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._execution(require(body, "executionArn"))
        out = {k: doc[k] for k in ("executionArn", "stateMachineArn", "name", "status", "startDate", "input")}
        out["inputDetails"] = {"included": True}
        for key in ("stopDate", "error", "cause", "mapRunArn"):
            if doc.get(key) is not None:
                out[key] = doc[key]
        if "output" in doc:
            out.update(output=doc["output"], outputDetails={"included": True})
        return out

    def GetExecutionHistory(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._execution(require(body, "executionArn"))
        events = [dict(e, timestamp=epoch(e["timestamp"])) for e in list(doc["history"])]
        if body.get("reverseOrder"):
            events.reverse()
        if body.get("includeExecutionData") is False:
            events = [_without_data(e) for e in events]
        items, nxt = page(events, body.get("nextToken"), body.get("maxResults"), 100, 1000)
        out: dict[str, Any] = {"events": items}
        if nxt:
            out["nextToken"] = nxt
        return out

    def ListExecutions(self, body: dict[str, Any]) -> dict[str, Any]:
        machine_arn, map_run_arn = body.get("stateMachineArn"), body.get("mapRunArn")
        if bool(machine_arn) == bool(map_run_arn):
            raise ApiError("ValidationException", "Exactly one of stateMachineArn and mapRunArn must be given")
        if machine_arn:
            self._machine(machine_arn)
            docs = [d for d in self.twin.executions.values() if d["stateMachineArn"] == machine_arn and not d.get("mapRunArn")]
        else:
            docs = [d for d in self.twin.executions.values() if d.get("mapRunArn") == map_run_arn]
            if not docs and not any(r["mapRunArn"] == map_run_arn for d in self.twin.executions.values() for r in d["mapRuns"]):
                raise ApiError("ResourceNotFound", f"Map Run Does Not Exist: '{map_run_arn}'")
        status = body.get("statusFilter")
        docs = sorted((d for d in docs if not status or d["status"] == status), key=lambda d: d["startDate"], reverse=True)
        items, nxt = page(docs, body.get("nextToken"), body.get("maxResults"), 100, 1000)
        fields = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "mapRunArn")
        out: dict[str, Any] = {"executions": [{k: d[k] for k in fields if d.get(k) is not None} for d in items]}
        if nxt:
            out["nextToken"] = nxt
        return out

    def ListMapRuns(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._execution(require(body, "executionArn"))
        runs = doc.get("mapRuns", [])
        items, nxt = page(runs, body.get("nextToken"), body.get("maxResults"), 100, 1000)
        out: dict[str, Any] = {"mapRuns": [{k: r[k] for k in ("executionArn", "mapRunArn", "stateMachineArn",
                                                              "startDate", "stopDate")} for r in items]}
        if nxt:
            out["nextToken"] = nxt
        return out

    def DescribeMapRun(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = require(body, "mapRunArn")
        for doc in list(self.twin.executions.values()):
            for run in doc.get("mapRuns", []):
                if run["mapRunArn"] == arn:
                    return {k: v for k, v in run.items() if k != "stateMachineArn"}
        raise ApiError("ResourceNotFound", f"Map Run Does Not Exist: '{arn}'")


def _find_state(machine: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The state called ``name`` anywhere in a definition (Map and Parallel bodies included), or {}."""
    for state_name, state in (machine.get("States") or {}).items():
        if state_name == name:
            return state
        for inner in [state.get("ItemProcessor") or state.get("Iterator") or {}, *(state.get("Branches") or [])]:
            found = _find_state(inner, name)
            if found:
                return found
    return {}


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in event.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in ("input", "output")}
        out[key] = value
    return out


def _lookup(table: dict[str, dict[str, Any]], arn: str, missing: str, message: str) -> dict[str, Any]:
    """The document of ``arn``; AWS's InvalidArn for what is not a Step Functions ARN, else ``missing``."""
    doc = table.get(arn)
    if doc is None:
        if not str(arn).startswith(f"arn:{aws.PARTITION}:states:"):
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}'")
        raise ApiError(missing, f"{message}: '{arn}'")
    return doc
