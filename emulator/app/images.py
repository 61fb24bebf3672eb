"""Per-function images for the Docker backend, each tagged by a hash of what it is built from.

* A **zip function** (``CodeUri``) gets ``lambdatwin/fn:<hash>``: the emulator's base image
  (Debian + Python, ``emulator.docker.images``) plus its ``requirements.txt`` and the Lambda
  runtime's own packages (``awslambdaric``, ``boto3``), installed offline from wheels the host's
  pip downloaded (the machine's pip configuration applies). The hash covers the base image,
  the requirements file and the recipe only, so functions with the same requirements share an
  image and **editing handler code rebuilds nothing**: the code directory is copied into
  ``/var/task`` of each new container (a cold start), as a deployment package is.
* A **PackageType Image** function is ``docker build`` of its ``Metadata`` ``DockerContext`` and
  ``Dockerfile`` (``DockerBuildArgs`` passed), tagged ``lambdatwin/app-<name>:<hash of the
  context>``. Its ENTRYPOINT must run a Lambda runtime interface client, as for AWS. Offline,
  ``FROM public.ecr.aws/lambda/python`` cannot be pulled: the build argument
  ``LAMBDATWIN_PYTHON_BASE`` names a local image with ``awslambdaric`` as ENTRYPOINT
  (``ARG LAMBDATWIN_PYTHON_BASE`` + ``FROM ${LAMBDATWIN_PYTHON_BASE}``).

Only images whose tag is missing are built: a change to one function rebuilds that one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from emulator.app.build import RUNTIME_PACKAGES, content_digest
from emulator.app.template import FunctionSpec
from emulator.contracts.errors import EnvironmentSetupError

FUNCTION_REPOSITORY = "lambdatwin/fn"
APP_REPOSITORY = "lambdatwin/app"
BASE_BUILD_ARG = "LAMBDATWIN_PYTHON_BASE"
RECIPE_VERSION = "1"
_WHEELS = "wheels"
_DOCKERFILE = """\
FROM {base}
COPY {wheels} /tmp/lambdatwin-wheels
RUN PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-index --break-system-packages \\
    --disable-pip-version-check --find-links /tmp/lambdatwin-wheels {requirements} {runtime} \\
    && rm -rf /tmp/lambdatwin-wheels /root/.cache
ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime PYTHONUNBUFFERED=1
WORKDIR /var/task
ENTRYPOINT ["python3", "-m", "awslambdaric"]
"""


def _exists(client: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def _build(client: Any, context: Path, ref: str, what: str, dockerfile: str = "Dockerfile",
           buildargs: dict[str, str] | None = None, network_mode: str | None = None) -> None:
    from docker.errors import BuildError

    repository, tag = ref.split(":")
    try:
        client.images.build(path=str(context), dockerfile=dockerfile, tag=ref, rm=True, forcerm=True,
                            buildargs=buildargs or {}, network_mode=network_mode,
                            labels={"lambdatwin.content-hash": tag})
    except BuildError as exc:
        tail = [str(line.get("stream", line.get("error", ""))).strip() for line in exc.build_log][-3:]
        raise EnvironmentSetupError(f"docker build of {what} failed: {exc.msg} | {' | '.join(t for t in tail if t)}") from None


def zip_function_image(client: Any, base: str, requirements: Path | None, log: Callable[[str], None],
                       label: str) -> str:
    """The image of a zip function with these requirements (built once per content hash)."""
    text = requirements.read_bytes() if requirements is not None and requirements.is_file() else b""
    ref = f"{FUNCTION_REPOSITORY}:{content_digest(RECIPE_VERSION, base, text, *RUNTIME_PACKAGES)}"
    if _exists(client, ref):
        return ref
    log(f"building the image of {label} ({'requirements.txt' if text else 'no requirements'}) -> {ref}")
    with tempfile.TemporaryDirectory(prefix="lambdatwin-fn-image-") as tmp:
        context = Path(tmp)
        wheels = context / _WHEELS
        wheels.mkdir()
        args = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(wheels),
                *RUNTIME_PACKAGES]
        reqs = ""
        if text:
            shutil.copy(requirements, wheels / "requirements.txt")
            args += ["-r", str(requirements)]
            reqs = "-r /tmp/lambdatwin-wheels/requirements.txt"
        proc = subprocess.run(args, capture_output=True, text=True, cwd=requirements.parent if requirements else None)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise EnvironmentSetupError(f"pip download for {label} failed: {tail}; fix its requirements.txt")
        (context / "Dockerfile").write_text(_DOCKERFILE.format(base=base, wheels=_WHEELS, requirements=reqs,
                                                               runtime=" ".join(RUNTIME_PACKAGES)))
        _build(client, context, ref, label, network_mode="none")
    return ref


def image_function_image(client: Any, spec: FunctionSpec, python_base: str, build_args: dict[str, str],
                         log: Callable[[str], None]) -> str:
    """``docker build`` of a PackageType Image function's context (once per content hash)."""
    assert spec.docker_context is not None
    h = hashlib.sha256()
    for path in sorted(p for p in spec.docker_context.rglob("*") if p.is_file()):
        h.update(path.relative_to(spec.docker_context).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    args = {BASE_BUILD_ARG: python_base, **build_args}
    ref = f"{APP_REPOSITORY}-{spec.name.lower()}:{content_digest(RECIPE_VERSION, h.hexdigest(), spec.dockerfile, repr(sorted(args.items())))}"
    if not _exists(client, ref):
        log(f"docker build {spec.docker_context} ({spec.dockerfile}) -> {ref}")
        _build(client, spec.docker_context, ref, f"function {spec.logical_id}", spec.dockerfile, args)
    return ref
