"""Per-function dependency builds for the process backend: one venv per requirements set.

A Lambda function sees its own deployment package (``/var/task``), its layers
(``/opt/python``) and the runtime's own packages (the runtime interface client and
boto3), never the packages of whoever deployed it. The process backend gives each
function the same view:

* a **runtime directory** (``pip install --target``: ``awslambdaric`` and ``boto3``),
  built once per Python version;
* a **function venv** (``python -m venv`` + ``pip install -r requirements.txt`` with
  the machine's pip configuration), keyed by the SHA-256 of the Python version and
  the requirements file, so functions with the same requirements share one and a
  changed file rebuilds only that function's venv. The venv reaches the runtime
  directory through a ``.pth`` file, which puts it *after* the venv's own
  site-packages, as Lambda puts ``/var/runtime`` after ``/var/task``: a function
  that bundles its own boto3 gets its own.

The function process runs the venv's Python with the code directory as its working
directory and first on ``sys.path`` (Lambda's ``LAMBDA_TASK_ROOT``) and each layer's
``python/`` directory on ``PYTHONPATH``. Nothing of lambdatwin's environment is on
its path. Lambda's Python path: https://docs.aws.amazon.com/lambda/latest/dg/python-package.html
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from emulator.contracts.errors import EnvironmentSetupError

DEFAULT_CACHE = Path.home() / ".cache" / "lambdatwin" / "builds"
RUNTIME_PACKAGES = ("awslambdaric", "boto3")
_DONE = ".lambdatwin-complete"
_BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ProcessBuild:
    """How the process backend launches one function."""

    python: Path  # the venv's interpreter
    task_root: Path  # the code directory (LAMBDA_TASK_ROOT, the working directory)
    python_path: tuple[str, ...] = ()  # layers' python/ directories
    venv: Path | None = None
    built: bool = False  # False when it came from the cache


@dataclass
class BuildCache:
    """Builds venvs under ``root`` (``~/.cache/lambdatwin/builds`` by default).

    Args:
        root: the cache directory.
        log: called with one line per build step (progress output).
    """

    root: Path = DEFAULT_CACHE
    log: Callable[[str], None] = lambda line: None
    builds: list[str] = field(default_factory=list)  # keys built by this object (tests, reports)

    def python_for(self, version: str) -> str:
        """An interpreter of ``version`` (``3.11``): this one if it matches, else ``pythonX.Y`` on PATH.

        Raises:
            EnvironmentSetupError: no such interpreter on this machine.
        """
        if version == f"{sys.version_info.major}.{sys.version_info.minor}":
            return sys.executable
        found = shutil.which(f"python{version}")
        if found is None:
            raise EnvironmentSetupError(f"Runtime python{version} needs a python{version} interpreter on PATH; "
                                        "install it or set the function's Runtime to "
                                        f"python{sys.version_info.major}.{sys.version_info.minor}")
        return found

    def runtime_dir(self, python: str) -> Path:
        """The runtime's own packages (awslambdaric, boto3) for this interpreter, built once."""
        version = _python_version(python)
        target = self.root / f"runtime-py{version}-{content_digest(version, *RUNTIME_PACKAGES)}"
        with self._once(target) as needed:
            if needed:
                self.log(f"building the Lambda runtime packages for Python {version} ({', '.join(RUNTIME_PACKAGES)})")
                _run([python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--target", str(target),
                      *RUNTIME_PACKAGES], target, f"pip install {' '.join(RUNTIME_PACKAGES)} (the Lambda runtime)")
        return target

    def function_venv(self, python: str, requirements: Path | None, label: str) -> tuple[Path, bool]:
        """The venv for a requirements file (None: no requirements); returns (venv, whether it was built now)."""
        version = _python_version(python)
        text = requirements.read_bytes() if requirements is not None and requirements.is_file() else b""
        key = f"venv-py{version}-{content_digest(version, text)}"
        venv = self.root / key
        runtime = self.runtime_dir(python)
        with self._once(venv) as needed:
            if needed:
                self.log(f"building the venv of {label} ({'requirements.txt' if text else 'no requirements'})")
                _run([python, "-m", "venv", "--without-pip", str(venv)], venv, "python -m venv")
                if text:
                    # The host's pip (and its configuration: indexes, find-links, constraints)
                    # installs into the venv's interpreter.
                    _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python",
                          str(venv / "bin" / "python"), "install", "--quiet", "-r", str(requirements)],
                         venv, f"pip install -r {requirements} (function {label})", requirements.parent)
                site = _site_packages(venv)
                (site / "zz-lambdatwin-runtime.pth").write_text(f"{runtime}\n")
                self.builds.append(key)
        return venv, needed

    def build(self, label: str, runtime: str, code_dir: Path, layers: list[Path] | None = None) -> ProcessBuild:
        """Everything the process backend needs to run a zip function from ``code_dir``."""
        version = runtime.removeprefix("python")
        python = self.python_for(version)
        venv, built = self.function_venv(python, code_dir / "requirements.txt", label)
        paths = []
        for layer in layers or []:
            paths.append(str(layer / "python") if (layer / "python").is_dir() else str(layer))
        return ProcessBuild(python=venv / "bin" / "python", task_root=code_dir, python_path=tuple(paths),
                            venv=venv, built=built)

    @contextmanager
    def _once(self, target: Path) -> Iterator[bool]:
        """Yield True when ``target`` must be built (under a lock, so concurrent builders wait)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (target / _DONE).exists():
                yield False
                return
            if target.exists():
                shutil.rmtree(target)  # a build that was interrupted
            target.mkdir(parents=True)
            try:
                yield True
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            (target / _DONE).write_text("")


def _run(cmd: list[str], target: Path, what: str, cwd: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EnvironmentSetupError(f"{what} for {target.name} took longer than {_BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvironmentSetupError(f"{what} failed: {' | '.join(tail)}; fix it and run again")


def _python_version(python: str) -> str:
    if python == sys.executable:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    out = subprocess.run([python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise EnvironmentSetupError(f"{venv} has no lib/python3.*/site-packages; delete it and run again")
    return found[0]


def content_digest(*parts: str | bytes) -> str:
    """A short, stable hash of ``parts`` (the cache key of a build or an image)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
