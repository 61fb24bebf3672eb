"""The Task state's runner: Lambda, through the optimized integration or a function ARN.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html): with
``arn:aws:states:::lambda:invoke`` the arguments are the Invoke request (``FunctionName``,
``Payload``, ``LogType`` ...): a string ``Payload`` is sent verbatim (as the request body), a
missing or null one as ``{}``; the result is the Invoke response ``{"ExecutedVersion",
"Payload", "StatusCode", "SdkHttpMetadata": {"AllHttpHeaders", "HttpHeaders",
"HttpStatusCode"}, "SdkResponseMetadata": {"RequestId"}}`` plus ``LogResult`` with
``LogType: Tail`` (the last 4 KB of the function's log, base64). With a function ARN as the ``Resource`` the arguments are the payload and
the result is the function's output. ``TimeoutSeconds`` (a positive integer) abandons the call
with ``States.Timeout`` and no cause (https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html).
"""

from __future__ import annotations

import base64
import json
import threading
from email.utils import formatdate
from typing import Any

from emulator.contracts import aws
from emulator.contracts.aws import function_name_of
from emulator.contracts.lambdas import LambdaFunctionError, LambdaInvoker, new_request_id
import emulator.stepfunctions.errors as E
from emulator.stepfunctions.dataflow import check_payload
from emulator.stepfunctions.definition import LAMBDA_INVOKE
from emulator.stepfunctions.history import as_json
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step

INVALID_REQUEST_CONTENT = "Lambda.InvalidRequestContentException"


def _payload(params: dict[str, Any]) -> Any:
    payload = params.get("Payload")
    if payload is None:
        return {}
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except json.JSONDecodeError as exc:
            raise E.StatesError(INVALID_REQUEST_CONTENT, f"Could not parse request body into json: {exc}") from exc
    return payload


def _timeout(step: Step) -> float | None:
    timeout = step.lang.value(step, "TimeoutSeconds")
    if timeout is None:
        return None
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise E.StatesError(E.RUNTIME, f"State {step.name!r}: TimeoutSeconds {timeout!r} is not a positive integer")
    return timeout


def invoke_response(output: Any, request_id: str, log_type: str | None, log_tail: str) -> dict[str, Any]:
    """The lambda:invoke integration's result, with AWS's key names and casing."""
    body = json.dumps(output)
    headers = {"Connection": "keep-alive", "Content-Length": str(len(body.encode())),
               "Content-Type": "application/json", "Date": formatdate(usegmt=True),
               "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}
    response: dict[str, Any] = {
        "ExecutedVersion": "$LATEST", "Payload": output,
        "SdkHttpMetadata": {"AllHttpHeaders": {k: [v] for k, v in headers.items()}, "HttpHeaders": headers,
                            "HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": request_id}, "StatusCode": 200,
    }
    if log_type == "Tail":
        response["LogResult"] = base64.b64encode(log_tail.encode()[-4096:]).decode()
    return response


def run_task(execution: ExecutionPort, step: Step) -> Outcome:
    """Invoke the Lambda function and record the Task/LambdaFunction events."""
    params = step.lang.arguments(step)
    check_payload(params, step.name)
    resource = step.state["Resource"]
    history = execution.history
    if resource == LAMBDA_INVOKE:
        if not isinstance(params, dict):
            raise E.StatesError(E.RUNTIME, f"State {step.name!r}: the lambda:invoke arguments must be an object")
        function = function_name_of(str(params.get("FunctionName", "")))
        scheduled = {"resourceType": "lambda", "resource": "invoke", "region": aws.REGION, "parameters": as_json(params)}
        # TaskScheduledEventDetails carry the timeouts a state sets as literal numbers.
        for field, key in (("TimeoutSeconds", "timeoutInSeconds"), ("HeartbeatSeconds", "heartbeatInSeconds")):
            if isinstance(step.state.get(field), int):
                scheduled[key] = step.state[field]
        history.add("TaskScheduled", scheduled)
        history.add("TaskStarted", {"resourceType": "lambda", "resource": "invoke"})
    else:
        function = function_name_of(resource)
        history.add("LambdaFunctionScheduled", {"resource": resource, "input": as_json(params),
                                                "inputDetails": {"truncated": False}})
        history.add("LambdaFunctionStarted")
    try:
        payload = _payload(params) if resource == LAMBDA_INVOKE else params
        output, request_id, log_text = invoke_with_timeout(execution.invoker, function, payload, _timeout(step))
    except E.StatesError as exc:
        kind = "TimedOut" if exc.error == E.TIMEOUT else "Failed"
        # TaskFailedEventDetails name the resource; LambdaFunctionFailedEventDetails hold only error and cause.
        prefix, details = (("Task", {"resourceType": "lambda", "resource": "invoke", "error": exc.error})
                           if resource == LAMBDA_INVOKE else ("LambdaFunction", {"error": exc.error}))
        if exc.cause:
            details["cause"] = exc.cause
        history.add(f"{prefix}{kind}", details)
        raise
    if resource == LAMBDA_INVOKE:
        history.add("TaskSucceeded", {"resourceType": "lambda", "resource": "invoke", "output": as_json(output),
                                      "outputDetails": {"truncated": False}})
        return Outcome(invoke_response(output, request_id, params.get("LogType"), log_text))
    history.add("LambdaFunctionSucceeded", {"output": as_json(output), "outputDetails": {"truncated": False}})
    return Outcome(output)


def invoke_with_timeout(invoker: LambdaInvoker, function: str, payload: Any,
                        timeout: float | None) -> tuple[Any, str, str]:
    """Call the invoker; a Task TimeoutSeconds abandons the call as Step Functions does.

    Returns ``(output, request id, log text)``. An invoker that also has
    ``invoke_with_record(function, payload)`` (the local Lambda service) gives the real request
    id and log lines; any other gives a fresh request id and no log.

    Raises:
        StatesError: the function's error (its errorType), or States.Timeout (no cause).
    """
    def call() -> tuple[Any, str, str]:
        try:
            with_record = getattr(invoker, "invoke_with_record", None)
            if with_record is None:
                return invoker.invoke(function, payload), new_request_id(), ""
            done = with_record(function, payload)
            if done.error is not None:
                raise done.error
            return done.payload, done.record.request_id, "\n".join(done.log_lines)
        except LambdaFunctionError as exc:
            # The cause is the function's error body as Lambda returns it (errorMessage first).
            cause = {"errorMessage": exc.message, "errorType": exc.error_type, "stackTrace": exc.trace}
            raise E.StatesError(exc.error_type, json.dumps(cause)) from exc

    if not timeout:
        return call()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except E.StatesError as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise E.StatesError(E.TIMEOUT, None)
    if "error" in box:
        raise box["error"]
    return box["value"]
