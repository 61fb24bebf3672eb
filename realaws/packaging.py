"""The zip packaging path: the handlers' code zip and a dependencies layer, staged in the stack's bucket.

Lambda limits a function plus its layers to 250 MB unzipped, which CPU torch
alone exceeds; this path suits slimmed builds. The container image (up to
10 GB) is the default.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realaws.config import REPO_ROOT, PackageSettings, StackNames

ARTIFACT_PREFIX = "deploy/"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # fixed mtimes make the zip (and its hash) reproducible


@dataclass(frozen=True)
class ZipCode:
    """What the functions run from: code in S3 plus layer ARNs."""

    s3_key: str
    sha256: str
    layers: tuple[str, ...]


def build_code_zip(root: Path = REPO_ROOT) -> bytes:
    """A reproducible zip of the ``worker`` package (the handlers and what they import)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((root / "worker").rglob("*.py")):
            info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _upload(s3: Any, bucket: str, kind: str, body: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(body).hexdigest()
    key = f"{ARTIFACT_PREFIX}{kind}-{digest[:16]}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, digest


def ensure_layer(lam: Any, s3: Any, names: StackNames, layer_zip: Path, package: PackageSettings) -> str:
    """Publish the layer zip as a new version only when its content changed; returns the version ARN."""
    body = Path(layer_zip).read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    versions = lam.list_layer_versions(LayerName=names.layer).get("LayerVersions", [])
    for version in versions:
        if version.get("Description") == f"sha256:{digest}":
            return str(version["LayerVersionArn"])
    key, _ = _upload(s3, names.bucket, "layer", body)
    published = lam.publish_layer_version(
        LayerName=names.layer, Description=f"sha256:{digest}",
        Content={"S3Bucket": names.bucket, "S3Key": key},
        CompatibleRuntimes=[package.runtime], CompatibleArchitectures=[package.architecture])
    return str(published["LayerVersionArn"])


def stage_zip_code(lam: Any, s3: Any, names: StackNames, package: PackageSettings) -> ZipCode:
    """Upload the code zip (built from ``worker/`` unless given) and the layer; returns where they are."""
    body = Path(package.code_zip).read_bytes() if package.code_zip else build_code_zip()
    key, digest = _upload(s3, names.bucket, "code", body)
    layers = list(package.layer_arns)
    if package.layer_zip:
        layers.insert(0, ensure_layer(lam, s3, names, Path(package.layer_zip), package))
    return ZipCode(s3_key=key, sha256=digest, layers=tuple(layers))


def delete_layer_versions(lam: Any, names: StackNames) -> int:
    """Delete every version of the stack's layer; returns how many."""
    count = 0
    for page in lam.get_paginator("list_layer_versions").paginate(LayerName=names.layer):
        for version in page.get("LayerVersions", []):
            lam.delete_layer_version(LayerName=names.layer, VersionNumber=version["Version"])
            count += 1
    return count
