"""The worker image in ECR: repository, presence check, and the build/push commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from realaws.config import REPO_ROOT, STACK_TAG, StackNames
from realaws.errors import AwsError, error_code
from realaws.policies import ecr_lambda_pull_policy

DOCKERFILE = Path(__file__).resolve().parent / "Dockerfile"


class ImageMissingError(AwsError):
    """The image is not in ECR yet; the message carries the commands that push it."""


def ensure_repository(ecr: Any, names: StackNames, tags: dict[str, str]) -> str:
    """Create the stack's repository (scan on push, tagged) unless present; returns its URI."""
    try:
        repo = ecr.describe_repositories(repositoryNames=[names.repository])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        repo = ecr.create_repository(
            repositoryName=names.repository, imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])["repository"]
    # Lambda pulls with its service principal; limit that to this stack's functions.
    ecr.set_repository_policy(repositoryName=names.repository, policyText=json.dumps(ecr_lambda_pull_policy(names)))
    return str(repo["repositoryUri"])


def repository_stack(ecr: Any, names: StackNames) -> str | None:
    """The repository's ``lambdatwin:stack`` tag ('' untagged, None when absent)."""
    try:
        arn = ecr.describe_repositories(repositoryNames=[names.repository])["repositories"][0]["repositoryArn"]
    except ecr.exceptions.RepositoryNotFoundException:
        return None
    tags = ecr.list_tags_for_resource(resourceArn=arn).get("tags", [])
    return next((t["Value"] for t in tags if t["Key"] == STACK_TAG), "")


def image_exists(ecr: Any, repository: str, tag: str) -> bool:
    """Whether ``repository:tag`` is in ECR."""
    try:
        return bool(ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"])
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise


def push_commands(names: StackNames, image_uri: str, architecture: str = "x86_64") -> list[str]:
    """Shell commands that build the worker image from this checkout and push it to ECR."""
    platform = "linux/arm64" if architecture == "arm64" else "linux/amd64"
    return [
        f"cd {REPO_ROOT}",
        f"aws ecr get-login-password --region {names.region} | "
        f"docker login --username AWS --password-stdin {names.registry}",
        f"docker buildx build --platform {platform} --provenance=false -f {DOCKERFILE.relative_to(REPO_ROOT)} "
        f"-t {image_uri} --load .",
        f"docker push {image_uri}",
    ]


def delete_repository(ecr: Any, names: StackNames) -> bool:
    """Delete the repository and its images; False when it was not there."""
    try:
        ecr.delete_repository(repositoryName=names.repository, force=True)
        return True
    except ecr.exceptions.RepositoryNotFoundException:
        return False
