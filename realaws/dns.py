"""Point the rendezvous DNS name at the running Fargate task's public IP.

A Fargate task gets a new public IP whenever it is replaced (deploy, crash,
platform update). ``repoint`` finds the service's running task, follows its
network interface to the public IP and UPSERTs the A record, changing nothing
when the record is already right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realaws.config import RendezvousSettings, StackNames
from realaws.errors import AwsError, NotDeployedError
from realaws.waiters import boto_wait, wait_until


@dataclass(frozen=True)
class TaskAddress:
    task_arn: str
    public_ip: str
    started: str  # ISO time the task started (newest wins)


@dataclass(frozen=True)
class RepointResult:
    """Where workers should dial, and whether the record changed."""

    task_arn: str
    public_ip: str
    domain: str | None
    changed: bool
    address: str  # host:port for the execution input


def running_task_address(ecs: Any, ec2: Any, names: StackNames) -> TaskAddress | None:
    """The newest RUNNING task of the stack's service that has a public IP, or None."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=names.cluster, serviceName=names.service,
                                                         desiredStatus="RUNNING"):
        arns.extend(page["taskArns"])
    best: TaskAddress | None = None
    for start in range(0, len(arns), 100):  # DescribeTasks takes 100 at a time
        for task in ecs.describe_tasks(cluster=names.cluster, tasks=arns[start:start + 100])["tasks"]:
            # Service tasks carry group "service:<name>"; skip anything else in the cluster.
            if task.get("group") != f"service:{names.service}" or task.get("lastStatus") != "RUNNING":
                continue
            eni = _eni_id(task)
            ip = _public_ip(ec2, eni) if eni else None
            started = str(task.get("startedAt") or task.get("createdAt") or "")
            if ip and (best is None or started > best.started):
                best = TaskAddress(task_arn=task["taskArn"], public_ip=ip, started=started)
    return best


def _eni_id(task: dict[str, Any]) -> str | None:
    for attachment in task.get("attachments", []):
        if attachment.get("type") == "ElasticNetworkInterface":
            for detail in attachment.get("details", []):
                if detail.get("name") == "networkInterfaceId":
                    return str(detail["value"])
    return None


def _public_ip(ec2: Any, eni_id: str) -> str | None:
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
    ip = found[0].get("Association", {}).get("PublicIp") if found else None
    return str(ip) if ip else None


def find_hosted_zone(route53: Any, domain: str, zone_id: str | None) -> str:
    """The zone id to write ``domain`` into: the configured one, else the longest public zone ending the name.

    Raises:
        AwsError: no hosted zone in the account covers the domain.
    """
    if zone_id:
        return zone_id.rsplit("/", 1)[-1]
    fqdn = domain.rstrip(".") + "."
    best: tuple[int, str] | None = None
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            name = zone["Name"]
            if zone.get("Config", {}).get("PrivateZone"):
                continue
            if (fqdn == name or fqdn.endswith("." + name)) and (best is None or len(name) > best[0]):
                best = (len(name), zone["Id"].rsplit("/", 1)[-1])
    if best is None:
        raise AwsError(f"no public Route 53 hosted zone in this account covers {domain}; create one or set "
                       "rendezvous.hosted_zone_id")
    return best[1]


def current_a_record(route53: Any, zone_id: str, domain: str) -> list[str]:
    """The A record's values (empty when there is none)."""
    fqdn = domain.rstrip(".") + "."
    found = route53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType="A",
                                              MaxItems="1")["ResourceRecordSets"]
    for record in found:
        if record["Name"] == fqdn and record["Type"] == "A":
            return [r["Value"] for r in record.get("ResourceRecords", [])]
    return []


def upsert_a_record(route53: Any, zone_id: str, domain: str, ip: str, ttl: int, wait_s: float) -> bool:
    """Point ``domain`` at ``ip`` (UPSERT); False when it already pointed there."""
    if current_a_record(route53, zone_id, domain) == [ip]:
        return False
    change = route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Comment": "lambdatwin: rendezvous task public IP",
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": domain, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": ip}]}}]})
    if wait_s > 0:
        boto_wait(route53, "resource_record_sets_changed", Id=change["ChangeInfo"]["Id"], timeout_s=wait_s,
                  delay_s=min(5.0, wait_s), what=f"Route 53 change for {domain} to be INSYNC")
    return True


def delete_a_record(route53: Any, zone_id: str, domain: str) -> bool:
    """Delete the A record (DELETE needs the current values); False when absent."""
    values = current_a_record(route53, zone_id, domain)
    if not values:
        return False
    fqdn = domain.rstrip(".") + "."
    record = next(r for r in route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType="A", MaxItems="1")["ResourceRecordSets"])
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]})
    return True


def repoint(ecs: Any, ec2: Any, route53: Any, names: StackNames, settings: RendezvousSettings, *,
            wait_task_s: float = 300.0, wait_dns_s: float = 120.0, poll_s: float = 5.0) -> RepointResult:
    """Wait (bounded) for a running task with a public IP, then point the DNS name at it.

    Raises:
        NotDeployedError: the stack has no rendezvous.
        WaitTimeout: no task with a public IP within ``wait_task_s``.
    """
    if not settings.enabled:
        raise NotDeployedError("this stack has no rendezvous (rendezvous.enabled is false)")
    task = wait_until(lambda: running_task_address(ecs, ec2, names), timeout_s=wait_task_s, interval_s=poll_s,
                      what=f"a RUNNING task with a public IP in service {names.service} (check "
                           f"`aws ecs describe-services --cluster {names.cluster} --services {names.service}`)")
    changed = False
    if settings.domain:
        zone = find_hosted_zone(route53, settings.domain, settings.hosted_zone_id)
        changed = upsert_a_record(route53, zone, settings.domain, task.public_ip, settings.record_ttl_s, wait_dns_s)
    host = settings.domain or task.public_ip
    return RepointResult(task_arn=task.task_arn, public_ip=task.public_ip, domain=settings.domain, changed=changed,
                         address=f"{host}:{settings.port}")
