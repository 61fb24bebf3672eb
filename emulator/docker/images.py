"""Images built on this machine without any registry, each tagged by a hash of its inputs.

``lambdatwin/base:<hash>``
    ``debootstrap --variant=minbase bookworm`` with python3, pip, iptables and
    iproute2, imported with ``docker import`` (about a minute, once).
``lambdatwin/deps:<hash>``
    base + the runtime wheels (torch CPU, numpy, boto3, awslambdaric, moto)
    installed offline.
``lambdatwin/worker:<hash>``
    deps + the project wheel. ``ENTRYPOINT python3 -m awslambdaric``, ``CMD``
    a handler string, so the same image would run on real Lambda. It also runs
    the S3 endpoint (``python3 -m moto.server``), the rendezvous server
    (``python3 -m rendezvous serve``) and the NAT routers (``sleep infinity``
    plus ``iptables``), so one build serves the whole topology.

Layers are made by running a container on the parent image with the wheels
copied in (``put_archive``: works with a remote daemon too), then committing
it; the wheels are deleted in the same container, so they never weigh on the
image. A hash already present as a tag is reused as is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from emulator.docker.engine import DockerUnavailable, docker_client, require_host_tool
from emulator.docker.labels import LABEL_IMAGE_HASH
from emulator.docker.progress import QUIET, BuildProgress
from emulator.docker.wheels import CACHE_ROOT, ensure_project_wheel, ensure_wheels
from emulator.contracts.errors import EnvironmentSetupError

BASE_REPOSITORY = "lambdatwin/base"
DEPS_REPOSITORY = "lambdatwin/deps"
WORKER_REPOSITORY = "lambdatwin/worker"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "iptables", "iproute2", "ca-certificates", "netbase")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_HANDLER = "worker.infer.handler"
# Bump when the recipe changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"
# Trimmed from the rootfs: apt's download cache and lists, docs, man pages, locales.
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")
_WHEELS_IN_CONTAINER = "/tmp/lambdatwin-wheels"

WORKER_CHANGES = (
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "ENV PYTHONUNBUFFERED=1",
    "WORKDIR /var/task",
    'ENTRYPOINT ["python3", "-m", "awslambdaric"]',
    f'CMD ["{DEFAULT_HANDLER}"]',
)


class ImageBuildError(EnvironmentSetupError, RuntimeError):
    """An image could not be built; the message has the failing step's output."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_digest(packages: tuple[str, ...] = BASE_PACKAGES) -> str:
    """The base image's content hash: suite, variant, package list, recipe version."""
    return _digest("base", RECIPE_VERSION, SUITE, "minbase", *sorted(packages), os.uname().machine)


def debian_mirror() -> str:
    """The Debian mirror apt uses on this host (the image is bootstrapped from it).

    ``LAMBDATWIN_DEBIAN_MIRROR`` overrides; else the first ``debian`` (not
    security) URI in /etc/apt/sources.list{,.d/*}; else deb.debian.org.
    """
    override = os.environ.get("LAMBDATWIN_DEBIAN_MIRROR")
    if override:
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            uris = words[1:] if words[:1] == ["URIs:"] else [w for w in words[1:2] if words[:1] == ["deb"]]
            for uri in uris:
                if uri.rstrip("/").endswith("/debian") and "security" not in uri:
                    return uri
    return DEFAULT_MIRROR


@contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """One builder per image at a time (concurrent test runs would duplicate a minute of work)."""
    lock_dir = CACHE_ROOT / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _image_exists(client: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def _stream(cmd: list[str], progress: BuildProgress, what: str) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        progress.detail(line)
    if proc.wait() != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def ensure_base_image(progress: BuildProgress = QUIET, client: Any = None) -> str:
    """``lambdatwin/base:<hash>``, bootstrapped and imported when not yet present.

    Raises:
        DockerUnavailable: no daemon, or debootstrap missing / not root.
        ImageBuildError: debootstrap or the import failed.
    """
    client = client or docker_client()
    ref = f"{BASE_REPOSITORY}:{base_digest()}"
    with _build_lock("base"):
        if _image_exists(client, ref):
            return ref
        debootstrap = require_host_tool("debootstrap", "debootstrap")
        if os.geteuid() != 0:
            raise DockerUnavailable("building the base image runs debootstrap, which needs root; run as root once "
                                    "(the image is cached afterwards)")
        work = Path(tempfile.mkdtemp(prefix="lambdatwin-rootfs-", dir=_ensure_dir(CACHE_ROOT / "build")))
        try:
            rootfs = work / "rootfs"
            mirror = debian_mirror()
            progress.stage(f"debootstrap {SUITE} (minbase + {', '.join(BASE_PACKAGES)}) from {mirror}")
            _stream([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(rootfs), mirror],
                    progress, "debootstrap")
            for rel in _TRIM:
                target = rootfs / rel
                if target.is_dir():
                    shutil.rmtree(target)
                    target.mkdir()
            progress.stage(f"docker import -> {ref}")
            tar_path = work / "rootfs.tar"
            _stream(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tar_path), "."], progress, "tar of the rootfs")
            repository, tag = ref.split(":")
            client.api.import_image_from_file(
                str(tar_path), repository=repository, tag=tag,
                changes=[f"LABEL {LABEL_IMAGE_HASH}={tag}", 'CMD ["python3"]',
                         "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not _image_exists(client, ref):
            raise ImageBuildError(f"docker import did not produce {ref}")
        progress.done(f"built {ref}")
        return ref


def _tar_of(directory: Path, arcname: str, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        tar.add(directory, arcname=arcname)
    return out


def _commit_layer(client: Any, parent: str, ref: str, source: Path, script: str, changes: tuple[str, ...],
                  progress: BuildProgress) -> None:
    """Run ``script`` on ``parent`` with ``source`` at /tmp/lambdatwin-wheels; commit the result as ``ref``."""
    from docker.errors import NotFound

    # Named, not labelled: a commit copies the container's labels into the image.
    name = "lambdatwin-build-" + ref.replace("/", "-").replace(":", "-")
    try:
        client.containers.get(name).remove(force=True)  # left by an interrupted build
    except NotFound:
        pass
    container = client.containers.create(parent, name=name, entrypoint=["/bin/sh", "-c"], command=[script],
                                         network_disabled=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lambdatwin-layer-") as tmp:
            tar = _tar_of(source, _WHEELS_IN_CONTAINER.lstrip("/"), Path(tmp) / "layer.tar")
            with open(tar, "rb") as fh:
                container.put_archive("/", fh)
        container.start()
        tail: list[str] = []
        for chunk in container.logs(stream=True, follow=True):
            for line in chunk.decode(errors="replace").splitlines():
                tail = (tail + [line])[-30:]
                progress.detail(line)
        code = container.wait()["StatusCode"]
        if code != 0:
            raise ImageBuildError(f"building {ref} failed (exit {code}):\n" + "\n".join(tail))
        repository, tag = ref.split(":")
        container.commit(repository=repository, tag=tag,
                         changes=[*changes, f"LABEL {LABEL_IMAGE_HASH}={tag}"])
    finally:
        container.remove(force=True)


def _pip_install(args: str) -> str:
    # Offline (--no-index) into bookworm's system python; the wheels go in the same step.
    return (f"PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-index --break-system-packages "
            f"--disable-pip-version-check --find-links {_WHEELS_IN_CONTAINER} {args} "
            f"&& rm -rf {_WHEELS_IN_CONTAINER} /root/.cache")


def ensure_worker_image(progress: BuildProgress = QUIET, client: Any = None) -> str:
    """``lambdatwin/worker:<hash>``: the image every container of the emulator runs.

    Builds the base, downloads wheels and builds layers only when their hashes
    are not present yet; a rebuild after a project edit redoes only the
    project layer (seconds).

    Raises:
        DockerUnavailable, ImageBuildError, emulator.docker.wheels.WheelError
    """
    client = client or docker_client()
    base = ensure_base_image(progress, client)
    wheels = ensure_wheels(progress)
    project = ensure_project_wheel(progress)
    deps_ref = f"{DEPS_REPOSITORY}:{_digest('deps', RECIPE_VERSION, base, wheels.digest)}"
    worker_ref = f"{WORKER_REPOSITORY}:{_digest('worker', RECIPE_VERSION, deps_ref, project.name, *WORKER_CHANGES)}"
    with _build_lock("worker"):
        if _image_exists(client, worker_ref):
            return worker_ref
        if not _image_exists(client, deps_ref):
            progress.stage(f"installing {len(wheels.files)} wheels offline -> {deps_ref}")
            _commit_layer(client, base, deps_ref, wheels.directory,
                          _pip_install(f"-r {_WHEELS_IN_CONTAINER}/requirements.txt"), ('CMD ["python3"]',), progress)
            _prune(client, DEPS_REPOSITORY, keep=deps_ref)
        progress.stage(f"installing the project wheel -> {worker_ref}")
        _commit_layer(client, deps_ref, worker_ref, project, _pip_install(f"--no-deps {_WHEELS_IN_CONTAINER}/*.whl"),
                      WORKER_CHANGES, progress)
        _prune(client, WORKER_REPOSITORY, keep=worker_ref)
    progress.done(f"built {worker_ref}")
    return worker_ref


def _prune(client: Any, repository: str, keep: str) -> None:
    """Drop older tags of ``repository`` that no container uses (each is ~1 GB)."""
    from docker.errors import APIError

    in_use = {c.attrs.get("Image") for c in client.containers.list(all=True)}
    for image in client.images.list(name=repository):
        if keep in image.tags or image.id in in_use:
            continue
        for tag in image.tags:
            try:
                client.images.remove(tag, noprune=False)
            except APIError:
                pass  # another run started using it meanwhile


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
