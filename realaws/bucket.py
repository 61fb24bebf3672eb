"""The stack's S3 bucket (data, deploy artifacts, run results): create, empty, delete."""

from __future__ import annotations

from typing import Any

from emulator.contracts.aws import S3_LOCATIONLESS_REGION
from realaws.config import STACK_TAG
from realaws.errors import AwsError, error_code


def ensure_bucket(s3: Any, name: str, region: str, tags: dict[str, str]) -> bool:
    """Create the bucket (private, tagged) unless it exists; True when it was created.

    Raises:
        AwsError: the name belongs to another account (bucket names are global).
    """
    created = False
    try:
        s3.head_bucket(Bucket=name)
    except Exception as exc:  # noqa: BLE001
        code = error_code(exc)
        if code in ("403", "AccessDenied"):
            raise AwsError(f"bucket {name!r} exists but is not yours (S3 names are global); set `bucket` "
                           "in the stack config to another name") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        params: dict[str, Any] = {"Bucket": name}
        if region != S3_LOCATIONLESS_REGION:  # it rejects an explicit LocationConstraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**params)
        created = True
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]})
    return created


def bucket_stack(s3: Any, name: str) -> str | None:
    """The bucket's ``lambdatwin:stack`` tag ('' untagged, None when the bucket does not exist)."""
    try:
        tags = s3.get_bucket_tagging(Bucket=name)["TagSet"]
    except Exception as exc:  # noqa: BLE001
        code = error_code(exc)
        if code in ("NoSuchBucket", "404"):
            return None
        if code == "NoSuchTagSet":
            return ""
        raise
    return next((t["Value"] for t in tags if t["Key"] == STACK_TAG), "")


def empty_bucket(s3: Any, name: str) -> int:
    """Delete every object version, delete marker and unfinished upload; returns objects deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        # DeleteObjects takes at most 1,000 keys, the size of one page.
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            result = s3.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
            errors = result.get("Errors") or []
            if errors:
                first = errors[0]
                raise AwsError(f"could not delete s3://{name}/{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
            deleted += len(batch)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    return deleted


def delete_bucket(s3: Any, name: str) -> bool:
    """Empty and delete the bucket; False when it did not exist."""
    try:
        empty_bucket(s3, name)
        s3.delete_bucket(Bucket=name)
        return True
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("NoSuchBucket", "404"):
            return False
        raise
