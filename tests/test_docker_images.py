"""Engine check and the locally built images (no registry): content-hash caching, offline installs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from emulator.docker import wheels
from emulator.docker.engine import DockerUnavailable, docker_client


def test_no_daemon_gives_one_actionable_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable) as info:
        docker_client(timeout_s=2)
    message = str(info.value)
    assert "unix:///nonexistent/docker.sock" in message
    assert "apt-get install -y docker.io" in message and "dockerd" in message


def test_project_digest_follows_the_container_sources_only(tmp_path: Path):
    root = Path(wheels.REPO_ROOT)
    for name in (*wheels.PROJECT_FILES, *wheels.PROJECT_PACKAGES):
        src = root / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / name)
    before = wheels.project_digest(tmp_path)
    (tmp_path / "worker" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "worker" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "emulator").mkdir()
    (tmp_path / "emulator" / "anything.py").write_text("# the image does not carry emulator/\n")
    assert wheels.project_digest(tmp_path) == before, "bytecode and non-container packages must not force a rebuild"
    (tmp_path / "worker" / "infer.py").write_text((tmp_path / "worker" / "infer.py").read_text() + "\n# edit\n")
    assert wheels.project_digest(tmp_path) != before


def test_requirements_pin_torch_and_follow_host_versions():
    reqs = wheels.pinned_requirements()
    assert "torch==2.13.0" in reqs
    assert any(r.startswith("awslambdaric") for r in reqs) and any(r.startswith("moto[server,s3]") for r in reqs)
    # Installed on the host -> pinned to the host's version, so containers run what the local backend runs.
    from importlib import metadata
    assert f"numpy=={metadata.version('numpy')}" in reqs


@pytest.mark.docker
def test_worker_image_is_reused_by_content_hash(docker, worker_image):
    from emulator.docker.images import BASE_REPOSITORY, base_digest, ensure_worker_image

    started = time.monotonic()
    again = ensure_worker_image(client=docker)
    assert again == worker_image
    assert time.monotonic() - started < 10, "a cached image must not be rebuilt"
    image = docker.images.get(worker_image)
    tag = worker_image.split(":")[1]
    assert image.labels["lambdatwin.content-hash"] == tag
    assert image.attrs["Config"]["Entrypoint"] == ["python3", "-m", "awslambdaric"]
    assert image.attrs["Config"]["Cmd"] == ["worker.infer.handler"]
    docker.images.get(f"{BASE_REPOSITORY}:{base_digest()}")  # the base stays for the next rebuild


@pytest.mark.docker
def test_worker_image_has_the_runtime_offline(worker_image):
    """Run through testcontainers: the image's libraries match the host's pins, without any network."""
    from testcontainers.core.container import DockerContainer

    code = ("import importlib.metadata as m, torch, worker.infer, rendezvous.server, moto.server; "
            "print(torch.__version__, m.version('awslambdaric'), m.version('boto3'), torch.get_num_threads())")
    container = (DockerContainer(worker_image).with_kwargs(entrypoint=["python3", "-c"], network_disabled=True)
                 .with_command([code]))
    with container:
        wrapped = container.get_wrapped_container()
        assert wrapped.wait(timeout=120)["StatusCode"] == 0, wrapped.logs().decode()
        out = wrapped.logs().decode().split()
    assert out[0] == "2.13.0+cpu"
    expected = dict(r.split("==") for r in wheels.pinned_requirements() if "==" in r and "[" not in r)
    assert out[1] == expected.get("awslambdaric", out[1]) and out[2] == expected.get("boto3", out[2])
