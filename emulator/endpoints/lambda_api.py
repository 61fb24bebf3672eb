"""The Lambda API (restJson1 under ``/2015-03-31/functions``) on the twin's LambdaService.

Operations, with the documented status codes:
https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html

* Invoke: ``RequestResponse`` 200 (a function error is 200 with ``X-Amz-Function-Error:
  Unhandled`` and the error document as the payload), ``Event`` 202 (runs in the
  background), ``DryRun`` 204; ``X-Amz-Log-Type: Tail`` returns the last 4 KB of the
  invocation's log in ``X-Amz-Log-Result`` (base64). Throttling is 429
  TooManyRequestsException, an unknown function 404 ResourceNotFoundException.
* CreateFunction (201), UpdateFunctionCode, UpdateFunctionConfiguration, GetFunction,
  GetFunctionConfiguration, ListFunctions (``Marker``/``MaxItems``), DeleteFunction (204).

Code: ``Code.ZipFile`` (base64 in the JSON body, as the SDKs send it) or
``Code.S3Bucket``/``S3Key`` from the twin's S3; functions from a template run from
their CodeUri directory. Any update retires the function's warm environments, so
the next invoke is a cold start on the new code. Runtimes: ``python3.x``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
from werkzeug.wrappers import Request, Response

from emulator.contracts import aws
from emulator.contracts.errors import UserError
from emulator.contracts.lambdas import LambdaFunctionError
from emulator.endpoints.core import Twin
from emulator.endpoints.wire import ApiError, iso_lambda, json_object, json_response, page, require

PREFIX = "/2015-03-31/functions"
_ROUTE = re.compile(r"^/2015-03-31/functions/?(?P<name>[^/]+)?(?P<rest>/[a-z]+)?/?$")
_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_PYTHON = re.compile(r"^python3\.\d+$")
_TAIL_BYTES = 4096
_CONFIG_FIELDS = ("Handler", "Runtime", "MemorySize", "Timeout", "Environment", "EphemeralStorage", "Role",
                  "Description", "Layers", "Architectures")


class LambdaAPI:
    """Routes and handlers; see the module docstring."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin

    def handle(self, request: Request) -> Response:
        m = _ROUTE.match(request.path)
        if m is None:
            raise ApiError("ResourceNotFoundException", f"No Lambda operation at {request.path}", 404)
        name, rest, method = m.group("name"), m.group("rest") or "", request.method
        if name is not None:
            name = aws.function_name_of(name)
        if name is None and method == "GET":
            return self.list_functions(request)
        if name is None and method == "POST":
            return self.create_function(self._body(request))
        if rest == "/invocations" and method == "POST":
            return self.invoke(name, request)
        if rest == "" and method == "GET":
            return self.get_function(name)
        if rest == "" and method == "DELETE":
            self._doc(name)
            self.twin.delete_function(name)
            return Response(status=204)
        if rest == "/configuration" and method == "GET":
            return json_response(self._configuration(self._doc(name)), "application/json")
        if rest == "/configuration" and method == "PUT":
            return self.update_configuration(name, self._body(request))
        if rest == "/code" and method == "PUT":
            return self.update_code(name, self._body(request))
        raise ApiError("ResourceNotFoundException", f"{method} {request.path} is not a Lambda operation lambdatwin serves", 404)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        return json_object(request.get_data(), "InvalidRequestContentException", "Could not parse request body into json")

    def _doc(self, name: str) -> dict[str, Any]:
        doc = self.twin.functions.get(name)
        if doc is None:
            raise ApiError("ResourceNotFoundException", f"Function not found: {aws.function_arn(name)}", 404)
        return doc

    # -- documents ------------------------------------------------------------------------
    def _configuration(self, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["FunctionName"]
        return {
            "FunctionName": name, "FunctionArn": aws.function_arn(name), "Runtime": doc["Runtime"],
            "Role": doc.get("Role", aws.role_arn("lambdatwin")), "Handler": doc["Handler"], "CodeSize": doc.get("CodeSize", 0),
            "Description": doc.get("Description", ""), "Timeout": doc["Timeout"], "MemorySize": doc["MemorySize"],
            "LastModified": iso_lambda(doc["LastModified"]), "CodeSha256": doc.get("CodeSha256", ""),
            "Version": "$LATEST", "Environment": {"Variables": doc["Environment"]},
            "TracingConfig": {"Mode": "PassThrough"}, "RevisionId": doc.get("RevisionId", ""),
            "State": "Active", "LastUpdateStatus": "Successful", "PackageType": doc.get("PackageType", "Zip"),
            "Architectures": doc.get("Architectures", ["x86_64"]),
            "EphemeralStorage": {"Size": doc.get("EphemeralStorage", aws.DEFAULT_EPHEMERAL_STORAGE_MB)},
            "Layers": [{"Arn": aws.layer_version_arn(Path(p).name), "CodeSize": 0} for p in doc.get("Layers", [])],
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
        }

    def _validated(self, doc: dict[str, Any]) -> dict[str, Any]:
        if not _NAME.match(str(doc.get("FunctionName", ""))):
            raise ApiError("InvalidParameterValueException", f"Invalid FunctionName: {doc.get('FunctionName')!r}")
        if not _PYTHON.match(str(doc.get("Runtime", ""))):
            raise ApiError("InvalidParameterValueException", f"Value {doc.get('Runtime')!r} at 'runtime': "
                           "lambdatwin serve runs python3.x runtimes")
        if "." not in str(doc.get("Handler", "")):
            raise ApiError("InvalidParameterValueException", f"Invalid Handler {doc.get('Handler')!r}: expected module.function")
        if not (aws.MIN_MEMORY_MB <= int(doc["MemorySize"]) <= aws.MAX_MEMORY_MB):
            raise ApiError("InvalidParameterValueException", f"'MemorySize' value failed to satisfy constraint: "
                           f"Member must have value between {aws.MIN_MEMORY_MB} and {aws.MAX_MEMORY_MB}")
        if not (aws.MIN_TIMEOUT_S <= int(doc["Timeout"]) <= aws.MAX_TIMEOUT_S):
            raise ApiError("InvalidParameterValueException", f"'Timeout' value failed to satisfy constraint: "
                           f"Member must have value between {aws.MIN_TIMEOUT_S} and {aws.MAX_TIMEOUT_S}")
        return doc

    def _code(self, name: str, code: dict[str, Any]) -> dict[str, Any]:
        if code.get("ZipFile"):
            try:
                data = base64.b64decode(code["ZipFile"])
            except (ValueError, TypeError):
                raise ApiError("InvalidParameterValueException", "Code.ZipFile is not base64") from None
        elif code.get("S3Bucket") and code.get("S3Key"):
            s3 = boto3.client("s3", endpoint_url=self.twin.endpoint_url, region_name=aws.REGION,
                              aws_access_key_id="lambdatwin", aws_secret_access_key="lambdatwin")
            try:
                data = s3.get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])["Body"].read()
            except Exception as exc:  # noqa: BLE001 - any S3 failure is the caller's bad location
                raise ApiError("InvalidParameterValueException", f"Error occurred while GetObject. S3 Error Code: "
                               f"NoSuchKey. S3 Error Message: {exc}") from None
        elif code.get("ImageUri"):
            raise ApiError("InvalidParameterValueException", "lambdatwin serve runs zip functions; PackageType Image "
                           "functions come from a template on the Docker backend")
        else:
            raise ApiError("InvalidParameterValueException", "Please provide a source for function code "
                           "(Code.ZipFile or Code.S3Bucket and Code.S3Key)")
        try:
            directory, sha = self.twin.unpack_zip(name, data)
        except zipfile.BadZipFile:
            raise ApiError("InvalidParameterValueException", "Could not unzip uploaded file. Please check your file, "
                           "then try to upload again.") from None
        return {"CodeDir": str(directory), "CodeSha256": sha, "CodeSize": len(data)}

    def _deploy(self, doc: dict[str, Any]) -> None:
        doc["LastModified"], doc["RevisionId"] = time.time(), str(time.time_ns())
        try:
            self.twin.deploy_function(self._validated(doc))
        except UserError as exc:
            raise ApiError("InvalidParameterValueException", str(exc)) from None

    # -- operations -------------------------------------------------------------------------
    def create_function(self, body: dict[str, Any]) -> Response:
        name = require(body, "FunctionName")
        if name in self.twin.functions:
            raise ApiError("ResourceConflictException", f"Function already exist: {name}", 409)
        if body.get("PackageType", "Zip") != "Zip":
            raise ApiError("InvalidParameterValueException", "lambdatwin serve creates zip functions (PackageType Zip)")
        doc = self._doc_from(body, {"FunctionName": name, "Role": require(body, "Role"), "Runtime": body.get("Runtime"),
                                    "Handler": body.get("Handler"), "MemorySize": 128, "Timeout": 3, "Environment": {}})
        doc.update(self._code(name, require(body, "Code")))
        self._deploy(doc)
        return json_response(self._configuration(doc), "application/json", status=201)

    @staticmethod
    def _doc_from(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        doc = dict(base)
        for field in _CONFIG_FIELDS:
            if field not in body:
                continue
            value = body[field]
            if field == "Environment":
                value = dict((value or {}).get("Variables") or {})
            elif field == "EphemeralStorage":
                value = int((value or {}).get("Size", aws.DEFAULT_EPHEMERAL_STORAGE_MB))
            elif field == "Layers":
                if value:
                    raise ApiError("InvalidParameterValueException", "Layers by ARN are not supported by lambdatwin serve; "
                                   "deploy them with the function's template (AWS::Serverless::LayerVersion)")
                value = []
            doc[field] = value
        return doc

    def update_configuration(self, name: str, body: dict[str, Any]) -> Response:
        doc = self._doc_from(body, self._doc(name))
        self._deploy(doc)
        return json_response(self._configuration(doc), "application/json")

    def update_code(self, name: str, body: dict[str, Any]) -> Response:
        doc = dict(self._doc(name))
        if doc.get("PackageType") == "Image":
            raise ApiError("InvalidParameterValueException", "Please provide ImageUri when updating a function with "
                           "packageType Image; lambdatwin rebuilds it from its template's Dockerfile instead")
        doc.update(self._code(name, body))
        self._deploy(doc)
        return json_response(self._configuration(doc), "application/json")

    def get_function(self, name: str) -> Response:
        doc = self._doc(name)
        code = ({"RepositoryType": "ECR", "ImageUri": doc.get("DockerContext", "")} if doc.get("PackageType") == "Image"
                else {"RepositoryType": "S3", "Location": Path(doc["CodeDir"]).as_uri()})
        body: dict[str, Any] = {"Configuration": self._configuration(doc), "Code": code}
        if doc.get("ReservedConcurrentExecutions") is not None:
            body["Concurrency"] = {"ReservedConcurrentExecutions": doc["ReservedConcurrentExecutions"]}
        return json_response(body, "application/json")

    def list_functions(self, request: Request) -> Response:
        docs = sorted(self.twin.functions.values(), key=lambda d: d["FunctionName"])
        try:
            limit = int(request.args["MaxItems"]) if "MaxItems" in request.args else None
        except ValueError:
            raise ApiError("InvalidParameterValueException", "MaxItems must be an integer") from None
        items, nxt = page(docs, request.args.get("Marker"), limit, 50, 10000, "Marker", "InvalidParameterValueException")
        body: dict[str, Any] = {"Functions": [self._configuration(d) for d in items]}
        if nxt:
            body["NextMarker"] = nxt
        return json_response(body, "application/json")

    def invoke(self, name: str, request: Request) -> Response:
        self._doc(name)
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        raw = request.get_data() or b"{}"
        if len(raw) > aws.MAX_SYNC_REQUEST_BYTES:
            raise ApiError("RequestTooLargeException", "Request must be smaller than 6291456 bytes for the InvokeFunction operation", 413)
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError:
            raise ApiError("InvalidRequestContentException", "Could not parse request body into json: "
                           "Could not parse payload into json") from None
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if kind == "DryRun":
            return Response(status=204, headers=headers)
        if kind == "Event":
            threading.Thread(target=self._invoke_quietly, args=(name, payload), daemon=True).start()
            return Response(status=202, headers=headers)
        if kind != "RequestResponse":
            raise ApiError("InvalidParameterValueException", f"Invalid InvocationType: {kind}")
        try:
            done = self.twin.service.invoke_with_record(name, payload)
        except LambdaFunctionError as exc:
            if exc.error_type == aws.LAMBDA_THROTTLED:
                raise ApiError("TooManyRequestsException", "Rate Exceeded.", 429) from None
            raise ApiError(exc.error_type.split(".")[-1], exc.message, 404 if "NotFound" in exc.error_type else 500,
                           "Service") from None
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            text = "".join(f"{line}\n" for line in done.log_lines).encode()[-_TAIL_BYTES:]
            headers["X-Amz-Log-Result"] = base64.b64encode(text).decode()
        if done.error is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
            return json_response(done.error.to_payload(), "application/json", headers=headers)
        return json_response(done.payload, "application/json", headers=headers)

    def _invoke_quietly(self, name: str, payload: Any) -> None:
        # An asynchronous invocation's result goes nowhere (no destinations); its logs are kept.
        try:
            self.twin.service.invoke_with_record(name, payload)
        except LambdaFunctionError:
            pass
