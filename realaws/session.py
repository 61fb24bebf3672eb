"""boto3 clients for one account and region, with credentials from the standard chain."""

from __future__ import annotations

import difflib
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from realaws.config import StackNames
from realaws.errors import CredentialsError, RegionError, explain, record_call

# Adaptive retries back off on throttling (FilterLogEvents, GetExecutionHistory
# and DescribeMapRun have low per-second limits) instead of failing the collection.
_CLIENT_CONFIG = Config(retries={"max_attempts": 10, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)
# Services the pipeline needs; a region must offer all of them.
REQUIRED_SERVICES = ("lambda", "stepfunctions", "s3", "iam", "logs", "ecs", "ec2", "ecr", "route53", "sts")


def known_regions(session: boto3.Session) -> set[str]:
    """Every region botocore knows for Step Functions and Lambda, in all partitions."""
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("stepfunctions", partition_name=partition))
    return regions


def validate_region(session: boto3.Session, region: str | None) -> str:
    """The region if botocore knows it; otherwise RegionError with the closest match."""
    if not region:
        raise RegionError("no region: pass --region (or set AWS_REGION / a profile region)")
    regions = known_regions(session)
    if region not in regions:
        close = difflib.get_close_matches(region, sorted(regions), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise RegionError(f"unknown region {region!r}{hint} (Step Functions and Lambda are offered in: "
                          f"{', '.join(sorted(r for r in regions if r.count('-') == 2)[:8])}, ...)")
    return region


class AwsContext:
    """Clients for one region; the account id comes from STS on first use."""

    def __init__(self, region: str | None, profile: str | None = None) -> None:
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region)
        except Exception as exc:  # noqa: BLE001 - ProfileNotFound and friends become one message
            raise explain(exc) from None
        self.region = validate_region(self.session, region or self.session.region_name)
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A cached client; every call records its IAM action for AccessDenied messages."""
        if service not in self._clients:
            client = self.session.client(service, region_name=self.region, config=_CLIENT_CONFIG)
            client.meta.events.register("before-call", record_call)
            self._clients[service] = client
        return self._clients[service]

    def check_credentials(self) -> None:
        """Fail early and clearly when the chain finds no credentials."""
        if self.session.get_credentials() is None:
            raise CredentialsError("no AWS credentials found: configure boto3's standard chain (AWS_PROFILE or "
                                   "--profile, `aws configure`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, "
                                   "or an instance/task role)")

    @cached_property
    def account(self) -> str:
        self.check_credentials()
        try:
            return str(self.client("sts").get_caller_identity()["Account"])
        except Exception as exc:  # noqa: BLE001
            raise explain(exc) from None

    @cached_property
    def partition(self) -> str:
        return self.session.get_partition_for_region(self.region)

    def names(self, stack: str, bucket: str | None = None) -> StackNames:
        """The stack's resource names in this account and region."""
        return StackNames(stack=stack, account=self.account, region=self.region, partition=self.partition,
                          bucket_override=bucket)
