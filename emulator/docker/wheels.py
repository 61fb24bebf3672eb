"""The wheels the worker image installs offline: third-party ones and the project's own.

Third-party wheels are ``pip download``ed on the host once per requirement set
into ``~/.cache/lambdatwin/wheels/<hash>/`` (the image has no index to reach).
They are fetched for the image's interpreter (Debian bookworm: CPython 3.11,
glibc 2.36), not the host's, so a host on another Python still builds a
working image. Versions are pinned to what the host has installed where it has
them, so the containers run the same libraries as the local backend.

The project wheel holds only what runs inside a container — ``worker`` (the
handlers) and ``rendezvous`` — like the deployment package on real Lambda; it
is rebuilt only when those files change.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from emulator.docker.progress import QUIET, BuildProgress
from emulator.contracts.errors import EnvironmentSetupError

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get("LAMBDATWIN_CACHE", Path.home() / ".cache" / "lambdatwin"))

# The image's interpreter (Debian bookworm's python3) and C library.
IMAGE_PYTHON = (3, 11)
IMAGE_GLIBC_MINOR = 36

# What runs in a container: the Lambda runtime client, the handlers' libraries,
# and moto's server for the S3 endpoint container. torch is pinned exactly: the
# CPU build lies on this machine's disk, a looser pin pulls the CUDA build.
RUNTIME_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("torch", "torch==2.13.0"),
    ("numpy", "numpy"),
    ("boto3", "boto3"),
    ("awslambdaric", "awslambdaric"),
    ("moto", "moto[server,s3]"),
)
PROJECT_PACKAGES = ("worker", "rendezvous")
PROJECT_FILES = ("pyproject.toml", "README.md")


class WheelError(EnvironmentSetupError, RuntimeError):
    """Downloading or building wheels failed; the message says what to do."""


@dataclass(frozen=True)
class WheelSet:
    """A folder of wheels and the hash that names it."""

    directory: Path
    requirements: tuple[str, ...]
    digest: str

    @property
    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.whl"))


def pinned_requirements() -> tuple[str, ...]:
    """The runtime requirements, each pinned to the host's installed version when it has one."""
    pinned = []
    for dist, spec in RUNTIME_REQUIREMENTS:
        if "==" in spec:
            pinned.append(spec)
            continue
        try:
            version = metadata.version(dist).split("+", 1)[0]
            pinned.append(f"{spec}=={version}")
        except metadata.PackageNotFoundError:
            pinned.append(spec)
    return tuple(pinned)


def _image_platform_args() -> list[str]:
    """pip download options selecting wheels for the image, not the host."""
    arch = platform.machine()
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(IMAGE_GLIBC_MINOR, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    major, minor = IMAGE_PYTHON
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", f"{major}.{minor}",
            "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
    for plat in platforms:
        args += ["--platform", plat]
    return args


def _digest(parts: list[str | bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _run_pip(args: list[str], progress: BuildProgress, what: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        progress.detail(line)
    if proc.wait() != 0:
        raise WheelError(f"{what} failed (pip exit {proc.returncode}):\n" + "\n".join(tail))


def ensure_wheels(progress: BuildProgress = QUIET, cache_root: Path = CACHE_ROOT) -> WheelSet:
    """Download the runtime wheels once per requirement set; reuse them afterwards."""
    requirements = pinned_requirements()
    digest = _digest([*requirements, repr(IMAGE_PYTHON), str(IMAGE_GLIBC_MINOR), platform.machine()])
    directory = cache_root / "wheels" / digest
    marker = directory / ".complete"
    if marker.exists():
        return WheelSet(directory, requirements, digest)
    progress.stage(f"downloading wheels for the image ({len(requirements)} requirements + dependencies)")
    staging = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=_ensure_dir(cache_root / "wheels")))
    try:
        _run_pip(["download", "--disable-pip-version-check", "-d", str(staging), *_image_platform_args(), *requirements],
                 progress, "downloading the image's wheels")
        cuda = [p.name for p in staging.glob("nvidia_*.whl")]
        if cuda:
            raise WheelError(f"pip resolved a CUDA build of torch (it fetched {cuda[0]} ...); the image needs the CPU "
                             "wheel `torch==2.13.0+cpu`: put it on a --find-links path or index pip uses")
        (staging / "requirements.txt").write_text("\n".join(requirements) + "\n")
        marker_tmp = staging / ".complete"
        marker_tmp.write_text(digest)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)  # atomic: a concurrent run sees all wheels or none
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return WheelSet(directory, requirements, digest)


def project_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files that make the project wheel (sources of the packages that run in containers)."""
    files = [root / name for name in PROJECT_FILES if (root / name).exists()]
    for package in PROJECT_PACKAGES:
        files += sorted(p for p in (root / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix not in (".pyc", ".pyo"))
    return files


def project_digest(root: Path = REPO_ROOT) -> str:
    """Content hash of :func:`project_files` (paths and bytes)."""
    parts: list[str | bytes] = []
    for path in project_files(root):
        parts += [str(path.relative_to(root)), path.read_bytes()]
    return _digest(parts)


def ensure_project_wheel(progress: BuildProgress = QUIET, cache_root: Path = CACHE_ROOT, root: Path = REPO_ROOT) -> Path:
    """Build ``lambdatwin-*.whl`` (worker + rendezvous) once per content hash; returns its folder."""
    digest = project_digest(root)
    directory = cache_root / "project" / digest
    if (directory / ".complete").exists():
        return directory
    progress.stage("building the project wheel (worker, rendezvous)")
    with tempfile.TemporaryDirectory(prefix="lambdatwin-src-") as tmp:
        stage = Path(tmp) / "src"
        for path in project_files(root):
            target = stage / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        out = Path(tmp) / "dist"
        # Built from a staged copy: never writes build/ or egg-info into the shared checkout.
        _run_pip(["wheel", "--disable-pip-version-check", "--no-deps", "--no-build-isolation", "-w", str(out), str(stage)],
                 progress, "building the project wheel")
        _ensure_dir(directory.parent)
        staging = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=directory.parent))
        for wheel in out.glob("*.whl"):
            shutil.copy2(wheel, staging / wheel.name)
        (staging / ".complete").write_text(digest)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    return directory


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
