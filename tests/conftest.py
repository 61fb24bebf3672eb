"""Shared fixtures: a real local S3 endpoint (moto's server in its own process).

The Docker fixtures (``docker``, ``worker_image``) and the AWS-on-moto fixtures (``aws``,
``aws_executing``) live in their helper modules and are registered here, so a test module
only imports plain helpers, one way: ``from tests.X import ...``.
"""

from __future__ import annotations

import uuid

import pytest

from emulator.s3server import LocalS3Server

pytest_plugins = ["tests.docker_helpers", "tests.realaws_helpers"]


@pytest.fixture(scope="session")
def s3_server():
    """One moto server process for the whole test session."""
    with LocalS3Server() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point boto3 in this process (and children that inherit env) at the local endpoint."""
    for key, value in s3_server.client_environment().items():
        monkeypatch.setenv(key, value)
    return s3_server.client_environment()


@pytest.fixture
def bucket(s3_server, s3_env):
    """A fresh, empty bucket on the local endpoint."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name
