"""An app is an AWS SAM template: load it, refuse what the twin cannot run, and resolve it.

Steps, in order (each fails with one line naming the resource and property):

1. parse the YAML/JSON with cfn-lint's decoder (it understands ``!Ref``/``!GetAtt``/``!Sub`` tags);
2. refuse up front every resource type and property the twin does not run
   (:data:`SUPPORTED`), Globals included;
3. validate with ``cfn-lint`` (the maintained CloudFormation/SAM linter; errors refuse, warnings are returned);
4. translate SAM to CloudFormation with ``aws-sam-translator`` (the library behind
   ``sam deploy``: it applies Globals and expands each Serverless resource). The
   translator accepts only S3 locations, so local ``CodeUri``/``ContentUri`` are
   swapped for placeholders first (as ``sam package`` would upload them) and
   ``DefinitionUri`` files are inlined as ``Definition``;
5. resolve parameters (``--parameter-overrides`` over ``Default``, ``AllowedValues``
   checked) and intrinsics against the twin's physical names, giving an :class:`App`.

Physical names: a function is named by its ``FunctionName`` or else its logical id
(so ``lambdatwin invoke MyFunction`` works); a state machine by ``Name`` or its
logical id; a bucket by ``BucketName`` or ``<stack>-<logical id>`` in lower case.
SAM reference: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification.html
"""

from __future__ import annotations

import copy
import json
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.app.intrinsics import Resolver
from emulator.contracts import aws
from emulator.contracts.errors import DefinitionFileError
from emulator.contracts.lambdas import FunctionConfig

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
_PLACEHOLDER_BUCKET = "lambdatwin-local-artifacts"

# Resource types the twin runs, with the properties it reads. Properties in
# ACCEPTED_NO_EFFECT are accepted and do nothing locally (IAM is not enforced, tags are metadata).
SUPPORTED: dict[str, set[str]] = {
    "AWS::Serverless::Function": {
        "CodeUri", "Handler", "Runtime", "MemorySize", "Timeout", "EphemeralStorage", "Environment",
        "ReservedConcurrentExecutions", "Layers", "Architectures", "PackageType", "ImageUri", "ImageConfig",
        "FunctionName", "Description", "Role", "Policies", "Tags", "PropagateTags", "PermissionsBoundary",
    },
    "AWS::Serverless::StateMachine": {
        "Definition", "DefinitionUri", "DefinitionSubstitutions", "Type", "Name", "Role", "Policies", "Tags",
        "PropagateTags", "PermissionsBoundary",
    },
    "AWS::Serverless::LayerVersion": {"ContentUri", "LayerName", "CompatibleRuntimes", "CompatibleArchitectures",
                                      "Description", "RetentionPolicy", "LicenseInfo"},
    "AWS::S3::Bucket": {"BucketName", "Tags", "VersioningConfiguration"},
}
GLOBALS_SUPPORTED: dict[str, set[str]] = {
    "Function": SUPPORTED["AWS::Serverless::Function"] - {"FunctionName"},
    "StateMachine": {"PropagateTags", "Tags", "PermissionsBoundary"},
}
ACCEPTED_NO_EFFECT = {"Role", "Policies", "Tags", "PropagateTags", "PermissionsBoundary", "Description",
                      "RetentionPolicy", "LicenseInfo", "CompatibleRuntimes", "CompatibleArchitectures",
                      "VersioningConfiguration"}
_RESOURCE_ATTRIBUTES = {"Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "UpdateReplacePolicy", "Condition"}
# What the translator generates from the supported SAM resources.
_TRANSLATED = {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::StepFunctions::StateMachine", "AWS::S3::Bucket",
               "AWS::Lambda::LayerVersion"}
_PYTHON_RUNTIME = re.compile(r"^python(3\.\d+)$")
_IMAGE_METADATA = ("Dockerfile", "DockerContext", "DockerTag", "DockerBuildArgs")


@dataclass
class FunctionSpec:
    """One function of the app, resolved."""

    logical_id: str
    name: str
    handler: str
    runtime: str  # "python3.11"; "" for an image
    memory_mb: int
    timeout_s: float
    environment: dict[str, str]
    ephemeral_storage_mb: int = aws.DEFAULT_EPHEMERAL_STORAGE_MB
    reserved_concurrency: int | None = None
    architectures: list[str] = field(default_factory=lambda: ["x86_64"])
    package_type: str = "Zip"  # Zip | Image
    code_dir: Path | None = None  # CodeUri (Zip)
    layers: list[Path] = field(default_factory=list)  # each layer's content directory
    docker_context: Path | None = None  # Image
    dockerfile: str = "Dockerfile"
    image_command: list[str] = field(default_factory=list)
    docker_build_args: dict[str, str] = field(default_factory=dict)

    def config(self, extra_environment: dict[str, str] | None = None) -> FunctionConfig:
        """The FunctionConfig every backend runs; ``extra_environment`` (S3 endpoint...) underneath the function's own."""
        return FunctionConfig(
            name=self.name, handler=self.handler, memory_mb=self.memory_mb, timeout_s=self.timeout_s,
            environment={**(extra_environment or {}), **self.environment},
            reserved_concurrency=self.reserved_concurrency, ephemeral_storage_mb=self.ephemeral_storage_mb,
        )

    @property
    def python_version(self) -> str:
        """``3.11`` for ``python3.11``; the host's for images."""
        m = _PYTHON_RUNTIME.match(self.runtime)
        return m.group(1) if m else f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class StateMachineSpec:
    """One state machine of the app: its definition text with the substitutions to apply."""

    logical_id: str
    name: str
    definition: str
    substitutions: dict[str, str]
    type: str = "STANDARD"  # STANDARD | EXPRESS

    @property
    def arn(self) -> str:
        return aws.state_machine_arn(self.name)


@dataclass
class BucketSpec:
    logical_id: str
    name: str


@dataclass
class App:
    """A loaded template: what the twin deploys."""

    path: Path
    stack_name: str
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]  # by logical id
    state_machines: dict[str, StateMachineSpec]
    buckets: dict[str, BucketSpec]
    warnings: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def function(self, name: str) -> FunctionSpec:
        """A function by logical id or physical name.

        Raises:
            DefinitionFileError: naming the functions there are.
        """
        for fn in self.functions.values():
            if name in (fn.logical_id, fn.name):
                return fn
        raise DefinitionFileError(f"{self.path}: no function {name!r}; the template has "
                                  f"{', '.join(sorted(self.functions)) or 'none'}")

    def state_machine(self, name: str | None = None) -> StateMachineSpec:
        """The state machine to run: by logical id or name, or the only one.

        Raises:
            DefinitionFileError: none, or several and no name given.
        """
        if name is None:
            if len(self.state_machines) != 1:
                raise DefinitionFileError(
                    f"{self.path}: the template has {len(self.state_machines)} state machines "
                    f"({', '.join(sorted(self.state_machines)) or 'none'}); pass --state-machine NAME")
            return next(iter(self.state_machines.values()))
        for sm in self.state_machines.values():
            if name in (sm.logical_id, sm.name):
                return sm
        raise DefinitionFileError(f"{self.path}: no state machine {name!r}; the template has "
                                  f"{', '.join(sorted(self.state_machines)) or 'none'}")


def parse_parameter_overrides(values: list[str] | None) -> dict[str, str]:
    """``--parameter-overrides`` as SAM takes them: ``Key=Value`` or ``ParameterKey=K,ParameterValue=V``.

    Raises:
        DefinitionFileError: an entry of neither form.
    """
    out: dict[str, str] = {}
    for raw in values or []:
        for item in raw.split() if " " in raw and "ParameterKey=" not in raw else [raw]:
            if item.startswith("ParameterKey="):
                m = re.match(r"^ParameterKey=([^,]+),ParameterValue=(.*)$", item)
                if not m:
                    raise DefinitionFileError(f"--parameter-overrides {item!r}: expected ParameterKey=K,ParameterValue=V")
                out[m.group(1)] = m.group(2)
            elif "=" in item:
                key, value = item.split("=", 1)
                out[key] = value
            else:
                raise DefinitionFileError(f"--parameter-overrides {item!r}: expected Key=Value")
    return out


def read_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML or JSON, CloudFormation short tags allowed) into plain dicts.

    Raises:
        DefinitionFileError: unreadable or not a mapping.
    """
    from cfnlint.decode import decode_str  # the linter's own decoder keeps the two in agreement

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DefinitionFileError(f"template {path}: {exc.strerror or exc}; pass an existing SAM template file") from None
    template, errors = decode_str(text)
    if errors or not isinstance(template, dict):
        detail = "; ".join(str(e.message) for e in errors[:3]) if errors else "it is not a mapping"
        raise DefinitionFileError(f"template {path}: cannot parse it: {detail}")
    return json.loads(json.dumps(template))  # plain dicts/lists, no line-number node classes


def refuse_unsupported(template: dict[str, Any], where: str) -> None:
    """Raise for the first resource type, attribute or property the twin does not run.

    Raises:
        DefinitionFileError: naming the resource (or Globals section) and the property.
    """
    for section in ("Conditions",):
        for name, body in (template.get(section) or {}).items():
            _check_condition(body, f"{where}: {section}.{name}")
    for section, props in (template.get("Globals") or {}).items():
        allowed = GLOBALS_SUPPORTED.get(section)
        if allowed is None:
            raise DefinitionFileError(f"{where}: Globals.{section} is not supported by the twin; "
                                      f"supported Globals: {', '.join(sorted(GLOBALS_SUPPORTED))}")
        for prop in props or {}:
            if prop not in allowed:
                raise DefinitionFileError(f"{where}: Globals.{section} property {prop!r} is not supported by the twin; "
                                          "remove it or set it per resource if the resource supports it")
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise DefinitionFileError(f"{where}: the template has no Resources")
    for logical, resource in resources.items():
        rtype = (resource or {}).get("Type")
        allowed = SUPPORTED.get(rtype)
        if allowed is None:
            raise DefinitionFileError(
                f"{where}: resource {logical!r} has type {rtype!r}, which the twin does not run; "
                f"supported types: {', '.join(sorted(SUPPORTED))}")
        for attribute in resource:
            if attribute not in _RESOURCE_ATTRIBUTES:
                raise DefinitionFileError(f"{where}: resource {logical!r}: attribute {attribute!r} is not supported")
        if "Condition" in resource:
            raise DefinitionFileError(f"{where}: resource {logical!r}: attribute 'Condition' is not supported by the twin; "
                                      "deploy every resource unconditionally (Fn::If in properties works)")
        for prop in (resource.get("Properties") or {}):
            if prop not in allowed:
                raise DefinitionFileError(
                    f"{where}: resource {logical!r} ({rtype}): property {prop!r} is not supported by the twin; "
                    f"supported: {', '.join(sorted(allowed))}")


def _check_condition(body: Any, where: str) -> None:
    if isinstance(body, dict):
        for key, value in body.items():
            if key.startswith("Fn::") and key not in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
                raise DefinitionFileError(f"{where}: {key} is not supported in a condition")
            _check_condition(value, where)
    elif isinstance(body, list):
        for value in body:
            _check_condition(value, where)


def lint(path: Path, template_text: str) -> list[str]:
    """Run cfn-lint; returns warnings, raises on errors.

    Raises:
        DefinitionFileError: the first error cfn-lint found, with its rule id and line.
    """
    from cfnlint.api import ManualArgs, lint as cfn_lint

    matches = cfn_lint(template_text, config=ManualArgs(regions=[aws.REGION]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DefinitionFileError(f"{path}:{first.linenumber}: cfn-lint {first.rule.id}: {first.message}{more}")
    return [f"{path}:{m.linenumber}: cfn-lint {m.rule.id}: {m.message}" for m in matches]


def _local_path(base: Path, value: Any, logical: str, prop: str) -> Path | None:
    """A local CodeUri/ContentUri/DefinitionUri as a path, or None when it is an S3 location."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DefinitionFileError(f"resource {logical!r}: property {prop!r} must be a local path for the twin "
                                  "(an S3 location object is not supported; point it at the directory)")
    if value.startswith("s3://"):
        raise DefinitionFileError(f"resource {logical!r}: property {prop!r} is an S3 location ({value}); "
                                  "the twin runs local code: point it at the directory or file")
    path = (base / value).resolve()
    if not path.exists():
        raise DefinitionFileError(f"resource {logical!r}: property {prop!r}: {path} does not exist")
    return path


@dataclass
class _Locals:
    code_dirs: dict[str, Path] = field(default_factory=dict)
    layer_dirs: dict[str, Path] = field(default_factory=dict)
    images: dict[str, tuple[Path, str, list[str], dict[str, str]]] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)  # DefinitionUri file text


def _dockerfile_cmd(path: Path) -> list[str]:
    """The last exec-form ``CMD [...]`` of a Dockerfile (the handler of a Lambda image)."""
    command: list[str] = []
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*CMD\s+(\[.*\])\s*$", line, re.IGNORECASE)
        if m:
            try:
                command = [str(v) for v in json.loads(m.group(1))]
            except json.JSONDecodeError:
                continue
    return command


def _prepare_for_translation(template: dict[str, Any], base: Path) -> _Locals:
    """Swap local artifacts for placeholders the translator accepts; inline DefinitionUri files."""
    found = _Locals()
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    global_code = globals_fn.pop("CodeUri", None)
    for logical, res in template["Resources"].items():
        props = res.setdefault("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            package = props.get("PackageType", globals_fn.get("PackageType", "Zip"))
            if package == "Image":
                meta = res.get("Metadata") or {}
                if "DockerContext" not in meta:
                    raise DefinitionFileError(f"resource {logical!r}: PackageType Image needs Metadata "
                                              "DockerContext (and Dockerfile) as `sam build` does")
                context = _local_path(base, meta["DockerContext"], logical, "Metadata.DockerContext")
                dockerfile = str(meta.get("Dockerfile", "Dockerfile"))
                if not (context / dockerfile).is_file():
                    raise DefinitionFileError(f"resource {logical!r}: Metadata.Dockerfile {context / dockerfile} is not a file")
                command = (props.get("ImageConfig") or {}).get("Command") or _dockerfile_cmd(context / dockerfile)
                if not command:
                    raise DefinitionFileError(f"resource {logical!r}: no handler: set ImageConfig.Command or a "
                                              f"CMD [\"module.handler\"] in {context / dockerfile}")
                args = {str(k): str(v) for k, v in (meta.get("DockerBuildArgs") or {}).items()}
                found.images[logical] = (context, dockerfile, list(command), args)
                props.setdefault("ImageUri", f"{aws.ACCOUNT_ID}.dkr.ecr.{aws.REGION}.amazonaws.com/{logical.lower()}:local")
                continue
            code = props.get("CodeUri", global_code)
            path = _local_path(base, code, logical, "CodeUri")
            if path is None:
                raise DefinitionFileError(f"resource {logical!r}: property 'CodeUri' is required (the directory with the handler)")
            if not path.is_dir():
                raise DefinitionFileError(f"resource {logical!r}: CodeUri {path} is not a directory")
            found.code_dirs[logical] = path
            props["CodeUri"] = f"s3://{_PLACEHOLDER_BUCKET}/{logical}"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            path = _local_path(base, props.get("ContentUri"), logical, "ContentUri")
            if path is None or not path.is_dir():
                raise DefinitionFileError(f"resource {logical!r}: ContentUri must be a local directory")
            found.layer_dirs[logical] = path
            props["ContentUri"] = f"s3://{_PLACEHOLDER_BUCKET}/{logical}"
        elif res["Type"] == "AWS::Serverless::StateMachine":
            if "DefinitionUri" in props:
                # Kept as text, as CloudFormation substitutes into the file's text:
                # `"MaxItemsPerBatch": ${Size}` is valid before substitution.
                path = _local_path(base, props["DefinitionUri"], logical, "DefinitionUri")
                if not path.is_file():
                    raise DefinitionFileError(f"resource {logical!r}: DefinitionUri {path} is not a file")
                found.definitions[logical] = path.read_text()
                props["DefinitionUri"] = f"s3://{_PLACEHOLDER_BUCKET}/{logical}.asl.json"
            elif "Definition" not in props:
                raise DefinitionFileError(f"resource {logical!r}: set Definition or DefinitionUri")
    return found


def _translate(template: dict[str, Any], parameters: dict[str, str], where: str) -> dict[str, Any]:
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.Session(region_name=aws.REGION, aws_access_key_id="lambdatwin", aws_secret_access_key="lambdatwin")
    try:
        return Translator(None, Parser(), boto_session=session).translate(
            template, parameter_values=dict(parameters), get_managed_policy_map=lambda: {})
    except InvalidDocumentException as exc:
        causes = "; ".join(str(getattr(c, "message", c)) for c in exc.causes)
        raise DefinitionFileError(f"{where}: SAM translation failed: {causes}") from None


def resolve_parameters(template: dict[str, Any], overrides: dict[str, str], where: str) -> dict[str, str]:
    """Parameter values: overrides over defaults; every parameter needs one and must be allowed.

    Raises:
        DefinitionFileError: an unknown override, a missing value, or one outside AllowedValues.
    """
    declared = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise DefinitionFileError(f"{where}: --parameter-overrides names {', '.join(unknown)}, which the template "
                                  f"does not declare (Parameters: {', '.join(sorted(declared)) or 'none'})")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise DefinitionFileError(f"{where}: parameter {name!r} has no Default; pass --parameter-overrides {name}=VALUE")
        value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(v) for v in allowed]:
            raise DefinitionFileError(f"{where}: parameter {name!r} = {value!r} is not one of its AllowedValues "
                                      f"{', '.join(map(str, allowed))}")
        if spec.get("Type") == "Number":
            try:
                float(value)
            except ValueError:
                raise DefinitionFileError(f"{where}: parameter {name!r} = {value!r} must be a Number") from None
        values[name] = value
    return values


def _stack_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "-", path.resolve().parent.name).strip("-") or "app"
    return name if name[0].isalpha() else f"app-{name}"


def load_app(path: Path | str, parameter_overrides: dict[str, str] | None = None, *, validate: bool = True,
             stack_name: str | None = None) -> App:
    """Load a SAM template into an :class:`App` (see the module docstring for the steps).

    Raises:
        DefinitionFileError: anything the twin cannot run or that is invalid, in one line.
    """
    path = Path(path).resolve()
    where = str(path)
    template = read_template(path)
    if SAM_TRANSFORM not in _as_list(template.get("Transform")):
        raise DefinitionFileError(f"{where}: not a SAM template: add `Transform: {SAM_TRANSFORM}`")
    refuse_unsupported(template, where)
    warnings = lint(path, path.read_text()) if validate else []
    parameters = resolve_parameters(template, parameter_overrides or {}, where)
    stack = stack_name or _stack_name(path)
    sam = copy.deepcopy(template)
    sam["Transform"] = SAM_TRANSFORM
    found = _prepare_for_translation(sam, path.parent)
    cfn = _translate(sam, parameters, where)
    unexpected = {lid: r["Type"] for lid, r in cfn.get("Resources", {}).items() if r["Type"] not in _TRANSLATED}
    if unexpected:
        lid, rtype = next(iter(unexpected.items()))
        raise DefinitionFileError(f"{where}: the translated template has resource {lid!r} ({rtype}), "
                                  "which the twin does not run (remove the Events or feature that creates it)")
    return _build_app(path, stack, parameters, template, cfn, found, warnings)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value else []


def _build_app(path: Path, stack: str, parameters: dict[str, str], sam: dict[str, Any], cfn: dict[str, Any],
               found: _Locals, warnings: list[str]) -> App:
    resources = cfn["Resources"]
    names: dict[str, str] = {}
    # Names may use parameters and pseudo parameters (not other resources: CloudFormation forbids the cycle).
    params_only = Resolver(parameters.__getitem__, lambda lid, att: (_ for _ in ()).throw(KeyError(att)), stack,
                           cfn.get("Mappings"))
    name_props = {"AWS::Lambda::Function": "FunctionName", "AWS::StepFunctions::StateMachine": "StateMachineName",
                  "AWS::S3::Bucket": "BucketName"}
    for lid, res in resources.items():
        prop = name_props.get(res["Type"])
        value = (res.get("Properties") or {}).get(prop) if prop else None
        if value is not None:
            names[lid] = str(params_only.resolve(value, f"{path}: resource {lid!r} property {prop!r}"))
        elif res["Type"] == "AWS::S3::Bucket":
            names[lid] = f"{stack}-{lid}".lower()
        else:
            names[lid] = lid

    def ref(name: str) -> Any:
        if name in parameters:
            return parameters[name]
        rtype = resources[name]["Type"]
        if rtype == "AWS::StepFunctions::StateMachine":
            return aws.state_machine_arn(names[name])
        if rtype == "AWS::Lambda::LayerVersion":
            return aws.layer_version_arn(names[name])
        return names[name]

    def get_att(lid: str, attribute: str) -> Any:
        rtype = resources[lid]["Type"]
        if rtype == "AWS::Lambda::Function" and attribute == "Arn":
            return aws.function_arn(names[lid])
        if rtype == "AWS::StepFunctions::StateMachine" and attribute in ("Arn", "Name"):
            return aws.state_machine_arn(names[lid]) if attribute == "Arn" else names[lid]
        if rtype == "AWS::S3::Bucket" and attribute in ("Arn", "DomainName", "RegionalDomainName"):
            return aws.bucket_arn(names[lid]) if attribute == "Arn" else f"{names[lid]}.s3.amazonaws.com"
        if rtype == "AWS::IAM::Role" and attribute == "Arn":
            return aws.role_arn(names[lid])
        raise KeyError(attribute)

    conditions: dict[str, bool] = {}
    resolver = Resolver(ref, get_att, stack, cfn.get("Mappings"), conditions)
    for cname, body in (cfn.get("Conditions") or {}).items():
        conditions[cname] = bool(resolver.resolve(body, f"Conditions.{cname}"))
    # SAM renames a LayerVersion (logical id + hash); its placeholder S3Key still names the SAM resource.
    layer_by_arn = {ref(lid): found.layer_dirs[(r.get("Properties") or {}).get("Content", {}).get("S3Key")]
                    for lid, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"
                    and (r.get("Properties") or {}).get("Content", {}).get("S3Key") in found.layer_dirs}
    functions: dict[str, FunctionSpec] = {}
    machines: dict[str, StateMachineSpec] = {}
    buckets: dict[str, BucketSpec] = {}
    for lid, res in resources.items():
        where = f"{path}: resource {lid!r}"
        props = resolver.resolve(res.get("Properties") or {}, where)
        if res["Type"] == "AWS::Lambda::Function":
            functions[lid] = _function_spec(lid, names[lid], props, found, layer_by_arn, where, warnings)
        elif res["Type"] == "AWS::StepFunctions::StateMachine":
            definition = found.definitions.get(lid, props.get("DefinitionString"))
            if not isinstance(definition, str):
                definition = json.dumps(props.get("Definition"))
            subs = {k: str(v) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
            machines[lid] = StateMachineSpec(lid, names[lid], definition, subs, props.get("StateMachineType", "STANDARD"))
        elif res["Type"] == "AWS::S3::Bucket":
            buckets[lid] = BucketSpec(lid, names[lid])
    return App(path, stack, parameters, functions, machines, buckets, warnings)


def _function_spec(lid: str, name: str, props: dict[str, Any], found: _Locals, layer_by_arn: dict[str, Path],
                   where: str, warnings: list[str]) -> FunctionSpec:
    package = props.get("PackageType", "Zip")
    runtime = str(props.get("Runtime", ""))
    if package != "Image" and not _PYTHON_RUNTIME.match(runtime):
        raise DefinitionFileError(f"{where}: property 'Runtime' {runtime or '(missing)'!r} is not supported; "
                                  "the twin runs Python runtimes (python3.x) or PackageType Image")
    layers = []
    for arn in props.get("Layers") or []:
        if arn not in layer_by_arn:
            raise DefinitionFileError(f"{where}: property 'Layers': {arn} is not an AWS::Serverless::LayerVersion "
                                      "of this template; the twin runs only local layers (ContentUri directories)")
        layers.append(layer_by_arn[arn])
    architectures = list(props.get("Architectures") or ["x86_64"])
    host = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    if architectures != [host]:
        warnings.append(f"{where}: Architectures {architectures} runs on this {host} host as {host} "
                        "(pure-Python code behaves the same; compiled wheels are the host's)")
    env = {k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}
    reserved = props.get("ReservedConcurrentExecutions")
    spec = FunctionSpec(
        logical_id=lid, name=name, handler=str(props.get("Handler", "")), runtime=runtime,
        memory_mb=int(props.get("MemorySize", 128)), timeout_s=float(props.get("Timeout", 3)), environment=env,
        ephemeral_storage_mb=int((props.get("EphemeralStorage") or {}).get("Size", aws.DEFAULT_EPHEMERAL_STORAGE_MB)),
        reserved_concurrency=int(reserved) if reserved is not None else None, architectures=architectures,
        package_type=package, code_dir=found.code_dirs.get(lid), layers=layers,
    )
    if package == "Image":
        context, dockerfile, command, args = found.images[lid]
        spec.docker_context, spec.dockerfile, spec.image_command, spec.docker_build_args = context, dockerfile, command, args
        spec.handler = command[0]
    try:
        spec.config()
    except ValueError as exc:
        raise DefinitionFileError(f"{where}: {exc}") from None
    return spec
