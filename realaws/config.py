"""The stack configuration: what ``lambdatwin aws deploy`` builds, from a file and/or flags.

A file is JSON (``.json``) or TOML (anything else), with the same shape as
:meth:`StackConfig.to_dict`, e.g.::

    name = "demo"
    region = "eu-west-1"
    [functions.worker]
    memory_mb = 3008
    reserved_concurrency = 200
    [package]
    type = "image"            # or "zip" (code_zip / layer_zip / layer_arns)
    [rendezvous]
    domain = "rendezvous.example.com"
    hosted_zone_id = "Z123..."

Every resource name derives from ``name`` (see :class:`StackNames`) so several
stacks share one account without clashing, and every resource carries the tag
``lambdatwin:stack=<name>``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emulator.contracts import errors
from emulator.contracts.aws import (MAX_EPHEMERAL_STORAGE_MB, MAX_MEMORY_MB, MAX_TIMEOUT_S, MIN_EPHEMERAL_STORAGE_MB,
                                    MIN_MEMORY_MB)
from emulator.contracts.job import FUNCTION_ROLES as ROLES
from emulator.contracts.job import HANDLERS

STACK_TAG = "lambdatwin:stack"
ROLE_TAG = "lambdatwin:role"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEFINITION = REPO_ROOT / "statemachines" / "data_parallel.asl.json"
# Lower case because the name goes into the S3 bucket and ECR repository names;
# short because IAM role names stop at 64 characters.
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,27}[a-z0-9]$")
# Fargate's valid (CPU units -> memory MiB) pairs.
_FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


class ConfigError(errors.ConfigError):
    """A stack configuration that cannot be deployed (the message says which field)."""


@dataclass
class FunctionSettings:
    """One Lambda function's size and limits."""

    memory_mb: int = 256
    timeout_s: int = 60
    ephemeral_storage_mb: int = 512
    reserved_concurrency: int | None = None

    def validate(self, role: str) -> None:
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ConfigError(f"functions.{role}.memory_mb {self.memory_mb} is outside {MIN_MEMORY_MB}-{MAX_MEMORY_MB}")
        if not 1 <= self.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigError(f"functions.{role}.timeout_s {self.timeout_s} must be 1-{MAX_TIMEOUT_S}")
        if not MIN_EPHEMERAL_STORAGE_MB <= self.ephemeral_storage_mb <= MAX_EPHEMERAL_STORAGE_MB:
            raise ConfigError(f"functions.{role}.ephemeral_storage_mb {self.ephemeral_storage_mb} must be "
                              f"{MIN_EPHEMERAL_STORAGE_MB}-{MAX_EPHEMERAL_STORAGE_MB}")
        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            raise ConfigError(f"functions.{role}.reserved_concurrency must be >= 0 (or unset)")


def _default_functions() -> dict[str, FunctionSettings]:
    return {
        "initialize": FunctionSettings(memory_mb=256, timeout_s=60),
        "worker": FunctionSettings(memory_mb=2048, timeout_s=300),
        "summarize": FunctionSettings(memory_mb=256, timeout_s=60),
    }


@dataclass
class PackageSettings:
    """How the handlers reach Lambda: a container image in ECR, or a zip plus a layer."""

    type: str = "image"  # image | zip
    image_uri: str | None = None  # default: <account>.dkr.ecr.<region>.amazonaws.com/<name>:<image_tag>
    image_tag: str = "latest"
    code_zip: str | None = None  # zip path; default: built from worker/
    layer_zip: str | None = None  # dependencies (torch, numpy) as a Lambda layer zip
    layer_arns: list[str] = field(default_factory=list)  # existing layers to attach
    runtime: str = "python3.11"
    architecture: str = "x86_64"

    def validate(self) -> None:
        if self.type not in ("image", "zip"):
            raise ConfigError(f"package.type {self.type!r} must be 'image' or 'zip'")
        if self.architecture not in ("x86_64", "arm64"):
            raise ConfigError(f"package.architecture {self.architecture!r} must be x86_64 or arm64")
        if self.type == "zip" and self.layer_zip and not Path(self.layer_zip).is_file():
            raise ConfigError(f"package.layer_zip {self.layer_zip} is not a file")
        if self.type == "zip" and self.code_zip and not Path(self.code_zip).is_file():
            raise ConfigError(f"package.code_zip {self.code_zip} is not a file")


@dataclass
class RendezvousSettings:
    """The rendezvous server as an ECS Fargate service, and its DNS name."""

    enabled: bool = True
    cpu: int = 256
    memory_mb: int = 512
    port: int = 10000
    health_port: int = 8080
    image_uri: str | None = None  # default: the worker image (same code, `python -m rendezvous serve`)
    domain: str | None = None  # e.g. rendezvous.example.com; None = workers dial the task's IP
    hosted_zone_id: str | None = None  # default: the public zone whose name ends the domain
    record_ttl_s: int = 30  # short: the record changes whenever the task is replaced
    ingress_cidr: str = "0.0.0.0/0"  # pairing port only: Lambda egress IPs are not fixed, so the world by default
    allow_v1: bool = False  # TCPunch v1 clients cannot authenticate: off unless asked for
    vpc_id: str | None = None  # default: the region's default VPC
    subnet_ids: list[str] = field(default_factory=list)  # default: the default VPC's subnets

    def validate(self, package: PackageSettings) -> None:
        if self.cpu not in _FARGATE_MEMORY:
            raise ConfigError(f"rendezvous.cpu {self.cpu} must be one of {sorted(_FARGATE_MEMORY)}")
        if self.memory_mb not in _FARGATE_MEMORY[self.cpu]:
            raise ConfigError(f"rendezvous.memory_mb {self.memory_mb} is not valid with cpu {self.cpu}; "
                              f"Fargate allows {_FARGATE_MEMORY[self.cpu][0]}-{_FARGATE_MEMORY[self.cpu][-1]}")
        for label, port in (("port", self.port), ("health_port", self.health_port)):
            if not 1 <= port <= 65535:
                raise ConfigError(f"rendezvous.{label} {port} is not a TCP port")
        if self.enabled and package.type == "zip" and not self.image_uri:
            raise ConfigError("rendezvous.image_uri is required with package.type 'zip' "
                              "(Fargate runs images; the zip has no image to reuse)")


@dataclass
class StackConfig:
    """Everything deploy needs; ``to_dict``/``from_dict`` round-trip through the config file."""

    name: str
    region: str
    bucket: str | None = None  # default: <name>-<account>-<region>
    functions: dict[str, FunctionSettings] = field(default_factory=_default_functions)
    package: PackageSettings = field(default_factory=PackageSettings)
    rendezvous: RendezvousSettings = field(default_factory=RendezvousSettings)
    definition_path: str | None = None  # default: statemachines/data_parallel.asl.json
    log_retention_days: int = 14
    tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> "StackConfig":
        """Raise ConfigError on the first invalid field; returns self for chaining."""
        if not _NAME_RE.match(self.name or ""):
            raise ConfigError(f"stack name {self.name!r} must be 2-29 characters of a-z, 0-9 and '-', "
                              "starting with a letter (it prefixes bucket, role and function names)")
        missing = [r for r in ROLES if r not in self.functions]
        if missing:
            raise ConfigError(f"functions is missing {', '.join(missing)}")
        for role, fn in self.functions.items():
            if role not in ROLES:
                raise ConfigError(f"functions.{role}: unknown function; use {', '.join(ROLES)}")
            fn.validate(role)
        self.package.validate()
        self.rendezvous.validate(self.package)
        if STACK_TAG in self.tags:
            raise ConfigError(f"tags: {STACK_TAG} is set by lambdatwin")
        return self

    @property
    def definition(self) -> Path:
        return Path(self.definition_path) if self.definition_path else DEFAULT_DEFINITION

    def resource_tags(self, **extra: str) -> dict[str, str]:
        """The tags every resource of this stack carries."""
        return {**self.tags, STACK_TAG: self.name, **extra}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StackConfig":
        """Build from a parsed config file; unknown keys are errors (typos would deploy defaults)."""
        data = dict(data)
        _reject_unknown(data, cls, "")
        functions = _default_functions()
        for role, values in (data.pop("functions", None) or {}).items():
            _reject_unknown(values, FunctionSettings, f"functions.{role}.")
            functions[role] = FunctionSettings(**{**asdict(functions.get(role, FunctionSettings())), **values})
        package = data.pop("package", None) or {}
        _reject_unknown(package, PackageSettings, "package.")
        rendezvous = data.pop("rendezvous", None) or {}
        _reject_unknown(rendezvous, RendezvousSettings, "rendezvous.")
        if "name" not in data or "region" not in data:
            raise ConfigError("the stack needs a name and a region (config file or --name/--region)")
        return cls(functions=functions, package=PackageSettings(**package),
                   rendezvous=RendezvousSettings(**rendezvous), **data)


def _reject_unknown(values: Any, kind: type, where: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'} must be a table/object")
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(where + u for u in unknown)}; known: {', '.join(sorted(known))}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw dict of a JSON or TOML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested dicts, ``None`` values dropped (unset CLI flags keep the file's values)."""
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, recursively for nested tables."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> StackConfig:
    """A validated config from an optional file plus overrides.

    Overrides use dotted keys for nested fields, e.g.
    ``load_config("stack.toml", name="demo", **{"functions.worker.memory_mb": 3008})``.
    """
    data: dict[str, Any] = read_config_file(path) if path else {}
    return StackConfig.from_dict(merge(data, nest(overrides))).validate()


@dataclass(frozen=True)
class StackNames:
    """Every resource name and ARN of one stack in one account and region."""

    stack: str
    account: str
    region: str
    partition: str = "aws"
    bucket_override: str | None = None

    @property
    def bucket(self) -> str:
        # Bucket names are global: the account and region make the default unique.
        return self.bucket_override or f"{self.stack}-{self.account}-{self.region}"

    def function(self, role: str) -> str:
        return f"{self.stack}-{role}"

    def function_arn(self, role: str) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{self.function(role)}"

    def function_log_group(self, role: str) -> str:
        return f"/aws/lambda/{self.function(role)}"

    @property
    def lambda_role(self) -> str:
        return f"{self.stack}-lambda-exec"

    @property
    def states_role(self) -> str:
        return f"{self.stack}-states"

    @property
    def ecs_execution_role(self) -> str:
        return f"{self.stack}-ecs-exec"

    def role_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    @property
    def state_machine(self) -> str:
        return f"{self.stack}-data-parallel"

    @property
    def state_machine_arn(self) -> str:
        return f"arn:{self.partition}:states:{self.region}:{self.account}:stateMachine:{self.state_machine}"

    @property
    def execution_arn_prefix(self) -> str:
        """Executions of the state machine, including Distributed Map children (``<sm>/<label>:<id>``)."""
        return f"arn:{self.partition}:states:{self.region}:{self.account}:execution:{self.state_machine}"

    @property
    def repository(self) -> str:
        return self.stack

    @property
    def registry(self) -> str:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"{self.account}.dkr.ecr.{self.region}.{suffix}"

    @property
    def repository_arn(self) -> str:
        return f"arn:{self.partition}:ecr:{self.region}:{self.account}:repository/{self.repository}"

    @property
    def layer(self) -> str:
        return f"{self.stack}-deps"

    @property
    def cluster(self) -> str:
        return self.stack

    @property
    def service(self) -> str:
        return f"{self.stack}-rendezvous"

    @property
    def task_family(self) -> str:
        return f"{self.stack}-rendezvous"

    @property
    def security_group(self) -> str:
        return f"{self.stack}-rendezvous"

    @property
    def rendezvous_secret_parameter(self) -> str:
        """The SSM parameter (SecureString) holding the rendezvous shared secret."""
        return f"/{self.stack}/rendezvous/secret"

    @property
    def rendezvous_secret_parameter_arn(self) -> str:
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter{self.rendezvous_secret_parameter}"

    @property
    def rendezvous_log_group(self) -> str:
        return f"/ecs/{self.stack}-rendezvous"

    def log_group_arn(self, group: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{group}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"
