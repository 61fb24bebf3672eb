"""The rendezvous server as an ECS Fargate service: network, security group, cluster, task definition, service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realaws.config import STACK_TAG, RendezvousSettings, StackNames
from realaws.errors import AwsError, error_code
from realaws.waiters import boto_wait, retry_on
from rendezvous.protocol import SECRET_ENV

CONTAINER = "rendezvous"
TASK_ROOT = "/var/task"  # LAMBDA_TASK_ROOT of the worker image, where `rendezvous/` is


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    cidrs: tuple[str, ...] = ()  # the VPC's IPv4 blocks: who may reach the health port


def find_network(ec2: Any, settings: RendezvousSettings) -> Network:
    """The configured VPC/subnets, else the region's default VPC and its subnets.

    Raises:
        AwsError: no VPC given and the region has no default VPC.
    """
    vpc_id = settings.vpc_id
    if not vpc_id:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise AwsError("the region has no default VPC: set rendezvous.vpc_id and rendezvous.subnet_ids "
                           "(public subnets, so the task gets a public IP)")
    else:
        vpcs = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    vpc_id = vpcs[0]["VpcId"]
    cidrs = tuple(sorted({a["CidrBlock"] for a in vpcs[0].get("CidrBlockAssociationSet", [])
                          if a.get("CidrBlockState", {}).get("State", "associated") == "associated"}
                         | {vpcs[0]["CidrBlock"]}))
    subnets = list(settings.subnet_ids)
    if not subnets:
        found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        subnets = sorted(s["SubnetId"] for s in found if s.get("MapPublicIpOnLaunch") or s.get("DefaultForAz"))
        if not subnets:
            raise AwsError(f"VPC {vpc_id} has no public subnets: set rendezvous.subnet_ids")
    return Network(vpc_id=vpc_id, subnet_ids=tuple(subnets), cidrs=cidrs)


def _find_security_group(ec2: Any, names: StackNames, vpc_id: str | None = None) -> dict[str, Any] | None:
    filters = [{"Name": "group-name", "Values": [names.security_group]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0] if groups else None


def ensure_security_group(ec2: Any, names: StackNames, network: Network, settings: RendezvousSettings,
                          tags: dict[str, str]) -> str:
    """A security group open inbound only on the pairing port (``ingress_cidr``) and, from inside the VPC
    only, the health port (ECS's health check runs in the task itself); returns its id."""
    group = _find_security_group(ec2, names, network.vpc_id)
    tag_list = [{"Key": k, "Value": v} for k, v in sorted({**tags, "Name": names.security_group}.items())]
    if group is None:
        group_id = ec2.create_security_group(
            GroupName=names.security_group, VpcId=network.vpc_id,
            Description=f"lambdatwin {names.stack} rendezvous: pairing and health ports only",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list}])["GroupId"]
        group = {"GroupId": group_id, "IpPermissions": []}
    else:
        group_id = group["GroupId"]
        ec2.create_tags(Resources=[group_id], Tags=tag_list)
    rules = [(settings.port, settings.ingress_cidr, "rendezvous pairing")]
    rules += [(settings.health_port, cidr, "rendezvous health, VPC only") for cidr in network.cidrs]
    wanted = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr, "Description": label}]}
              for port, cidr, label in rules]
    want = {("tcp", port, port, cidr) for port, cidr, _ in rules}
    # Anything else (an old port, a hand-added rule) is revoked: only these two ports stay open.
    have: set[tuple[Any, ...]] = set()
    stale: list[dict[str, Any]] = []
    for perm in group.get("IpPermissions", []):
        base = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
        for rng in perm.get("IpRanges", []):
            key = (perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort"), rng.get("CidrIp"))
            if key in want:
                have.add(key)
            else:
                stale.append({**base, "IpRanges": [{"CidrIp": rng["CidrIp"]}]})
        for source in ("Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds"):
            if perm.get(source):
                stale.append({**base, source: perm[source]})
    if stale:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=stale)
    missing = [p for p in wanted if ("tcp", p["FromPort"], p["ToPort"], p["IpRanges"][0]["CidrIp"]) not in have]
    if missing:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=missing)
    return str(group_id)


def ensure_cluster(ecs: Any, names: StackNames, tags: dict[str, str]) -> str:
    """The stack's ECS cluster (ACTIVE); returns its ARN."""
    found = ecs.describe_clusters(clusters=[names.cluster])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    tag_list = [{"key": k, "value": v} for k, v in sorted(tags.items())]
    if active:
        ecs.tag_resource(resourceArn=active[0]["clusterArn"], tags=tag_list)
        return str(active[0]["clusterArn"])
    return str(ecs.create_cluster(clusterName=names.cluster, tags=tag_list,
                                  capacityProviders=["FARGATE"])["cluster"]["clusterArn"])


def container_definition(names: StackNames, settings: RendezvousSettings, image_uri: str, region: str) -> dict[str, Any]:
    """The one container: the repository's server, `python -m rendezvous serve`, as in local runs.

    The shared secret reaches it as ``LAMBDATWIN_RENDEZVOUS_SECRET`` from the SSM
    parameter (ECS resolves ``secrets`` at task start); v1 only with ``allow_v1``.
    """
    return {
        "name": CONTAINER,
        "image": image_uri,
        "essential": True,
        # The whole task's memory as the container's hard limit (explicit, and what moto needs to place it).
        "memory": settings.memory_mb,
        # The worker image's entrypoint is the Lambda runtime; run the server instead.
        "entryPoint": ["python3", "-m", "rendezvous", "serve"],
        "command": ["--port", str(settings.port), "--health-port", str(settings.health_port), "--require-secret"]
                   + (["--allow-v1"] if settings.allow_v1 else []),
        "secrets": [{"name": SECRET_ENV, "valueFrom": names.rendezvous_secret_parameter_arn}],
        "workingDirectory": TASK_ROOT,
        "portMappings": [{"containerPort": settings.port, "protocol": "tcp"},
                         {"containerPort": settings.health_port, "protocol": "tcp"}],
        "healthCheck": {
            "command": ["CMD", "python3", "-c",
                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{settings.health_port}/livez', timeout=2)"],
            "interval": 15, "timeout": 5, "retries": 3, "startPeriod": 20,
        },
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": names.rendezvous_log_group, "awslogs-region": region, "awslogs-stream-prefix": "rendezvous"}},
    }


def ensure_task_definition(ecs: Any, names: StackNames, settings: RendezvousSettings, image_uri: str,
                           execution_role_arn: str, tags: dict[str, str]) -> str:
    """Register a new revision only when the definition changed; returns the revision ARN in use."""
    container = container_definition(names, settings, image_uri, names.region)
    wanted = {"cpu": str(settings.cpu), "memory": str(settings.memory_mb), "executionRoleArn": execution_role_arn,
              "container": container}
    try:
        latest = ecs.describe_task_definition(taskDefinition=names.task_family)["taskDefinition"]
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) not in ("ClientException", "ClientError"):
            raise
        latest = None
    if latest is not None and latest.get("status") == "ACTIVE":
        have = {"cpu": latest.get("cpu"), "memory": latest.get("memory"),
                "executionRoleArn": latest.get("executionRoleArn"),
                "container": next(iter(latest.get("containerDefinitions", [])), {})}
        if have["cpu"] == wanted["cpu"] and have["memory"] == wanted["memory"] \
                and have["executionRoleArn"] == execution_role_arn \
                and all(have["container"].get(k) == v for k, v in container.items()):
            return str(latest["taskDefinitionArn"])
    registered = retry_on(
        lambda: ecs.register_task_definition(
            family=names.task_family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu=wanted["cpu"], memory=wanted["memory"], executionRoleArn=execution_role_arn,
            runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
            containerDefinitions=[container], tags=[{"key": k, "value": v} for k, v in sorted(tags.items())]),
        codes={"ClientException"}, message_contains="role", timeout_s=60.0, interval_s=3.0,
        what=f"role {execution_role_arn} to be usable by ECS")
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def _service(ecs: Any, names: StackNames) -> dict[str, Any] | None:
    try:
        found = ecs.describe_services(cluster=names.cluster, services=[names.service])["services"]
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("ClusterNotFoundException",):
            return None
        raise
    live = [s for s in found if s.get("status") in ("ACTIVE", "DRAINING")]
    return live[0] if live else None


def ensure_service(ecs: Any, names: StackNames, task_definition_arn: str, network: Network, security_group: str,
                   tags: dict[str, str]) -> tuple[str, bool]:
    """One Fargate task with a public IP; returns (service ARN, created)."""
    net = {"awsvpcConfiguration": {"subnets": list(network.subnet_ids), "securityGroups": [security_group],
                                   "assignPublicIp": "ENABLED"}}
    existing = _service(ecs, names)
    if existing is None:
        service = ecs.create_service(
            cluster=names.cluster, serviceName=names.service, taskDefinition=task_definition_arn, desiredCount=1,
            launchType="FARGATE", networkConfiguration=net, propagateTags="SERVICE", enableECSManagedTags=True,
            # A singleton: stop the old task before starting the new one (the DNS name follows the new IP).
            deploymentConfiguration={"minimumHealthyPercent": 0, "maximumPercent": 100},
            tags=[{"key": k, "value": v} for k, v in sorted(tags.items())])["service"]
        return str(service["serviceArn"]), True
    ecs.update_service(cluster=names.cluster, service=names.service, taskDefinition=task_definition_arn,
                       desiredCount=1, networkConfiguration=net)
    ecs.tag_resource(resourceArn=existing["serviceArn"], tags=[{"key": k, "value": v} for k, v in sorted(tags.items())])
    return str(existing["serviceArn"]), False


def cluster_stack(ecs: Any, names: StackNames) -> str | None:
    """The cluster's ``lambdatwin:stack`` tag ('' untagged, None when absent or inactive)."""
    found = [c for c in ecs.describe_clusters(clusters=[names.cluster], include=["TAGS"])["clusters"]
             if c.get("status") == "ACTIVE"]
    if not found:
        return None
    return next((t["value"] for t in found[0].get("tags", []) if t["key"] == STACK_TAG), "")


def delete_service(ecs: Any, names: StackNames, wait_s: float) -> bool:
    """Scale to zero and delete the service, waiting (bounded) until it is gone; False if absent."""
    existing = _service(ecs, names)
    if existing is None:
        return False
    ecs.update_service(cluster=names.cluster, service=names.service, desiredCount=0)
    ecs.delete_service(cluster=names.cluster, service=names.service, force=True)
    if wait_s > 0:
        boto_wait(ecs, "services_inactive", cluster=names.cluster, services=[names.service], timeout_s=wait_s,
                  delay_s=min(5.0, wait_s), what=f"service {names.service} to drain")
    return True


def deregister_task_definitions(ecs: Any, names: StackNames) -> int:
    """Deregister every ACTIVE revision of the family; returns how many."""
    count = 0
    for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=names.task_family, status="ACTIVE"):
        for arn in page["taskDefinitionArns"]:
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == names.task_family:
                ecs.deregister_task_definition(taskDefinition=arn)
                count += 1
    return count


def delete_cluster(ecs: Any, names: StackNames) -> bool:
    if cluster_stack(ecs, names) is None:
        return False
    # Stop stray tasks (e.g. started by hand): a cluster with tasks cannot be deleted.
    for page in ecs.get_paginator("list_tasks").paginate(cluster=names.cluster):
        for task in page["taskArns"]:
            ecs.stop_task(cluster=names.cluster, task=task, reason="lambdatwin teardown")
    retry_on(lambda: ecs.delete_cluster(cluster=names.cluster), codes={"ClusterContainsServicesException",
             "ClusterContainsTasksException", "UpdateInProgressException"}, timeout_s=120.0, interval_s=5.0,
             what=f"cluster {names.cluster} to be empty")
    return True


def security_group_id(ec2: Any, names: StackNames) -> tuple[str, str] | None:
    """(group id, stack tag) of the stack's security group, or None."""
    group = _find_security_group(ec2, names)
    if group is None:
        return None
    return str(group["GroupId"]), next((t["Value"] for t in group.get("Tags", []) if t["Key"] == STACK_TAG), "")


def delete_security_group(ec2: Any, group_id: str, wait_s: float) -> bool:
    """Delete the group, retrying while a stopped task's network interface still holds it."""
    try:
        retry_on(lambda: ec2.delete_security_group(GroupId=group_id), codes={"DependencyViolation"},
                 timeout_s=wait_s, interval_s=10.0, what=f"security group {group_id} to be released")
        return True
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "InvalidGroup.NotFound":
            return False
        raise
