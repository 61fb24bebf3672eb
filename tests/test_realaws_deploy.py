"""`lambdatwin aws deploy` against a moto account: every resource, its tags, least-privilege policies, idempotence."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from realaws import deploy as deploy_mod
from realaws.config import ROLE_TAG, STACK_TAG
from realaws.deploy import deploy
from realaws.images import ImageMissingError
from realaws.packaging import build_code_zip
from realaws.stackstate import deployed_config
from tests.realaws_helpers import (ACCOUNT, DOMAIN, REGION, STACK, aws, hosted_zone, push_image,  # noqa: F401
                                  stack_config)

P = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}"
BUCKET = f"{STACK}-{ACCOUNT}-{REGION}"


def _deployed(ctx, **overrides):
    """Deploy the image path the way a user does: first deploy asks for the image, push, deploy again."""
    hosted_zone(ctx)
    cfg = stack_config(**overrides)
    with pytest.raises(ImageMissingError) as missing:
        deploy(ctx, cfg, wait_rendezvous_s=0)
    push_image(ctx)
    return cfg, deploy(ctx, cfg, wait_rendezvous_s=0), str(missing.value)


def _statements(doc: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in doc["Statement"]}


def _role_policy(ctx, role: str) -> dict:
    iam = ctx.client("iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 1, names
    doc = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    return json.loads(doc) if isinstance(doc, str) else doc


def test_missing_image_prints_build_and_push_commands(aws):
    _, result, message = _deployed(aws)
    registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert f"aws ecr get-login-password --region {REGION} | docker login --username AWS --password-stdin {registry}" in message
    assert f"docker buildx build --platform linux/amd64 --provenance=false -f realaws/Dockerfile -t {registry}/{STACK}:latest" in message
    assert f"docker push {registry}/{STACK}:latest" in message
    assert result.resources["ecr repository"] == f"{registry}/{STACK}"


def test_deploy_creates_every_resource_tagged(aws):
    cfg, result, _ = _deployed(aws)
    tag = {"Key": STACK_TAG, "Value": STACK}
    s3, lam, sfn, ecs, ec2, logs, ecr, iam = (aws.client(s) for s in
                                              ("s3", "lambda", "stepfunctions", "ecs", "ec2", "logs", "ecr", "iam"))
    assert tag in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    for role in ("initialize", "worker", "summarize"):
        fn = lam.get_function(FunctionName=f"{STACK}-{role}")
        assert fn["Tags"][STACK_TAG] == STACK and fn["Tags"][ROLE_TAG] == role
        conf = fn["Configuration"]
        assert conf["PackageType"] == "Image"
        assert conf["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{STACK}-lambda-exec"
        settings = cfg.functions[role]
        assert (conf["MemorySize"], conf["Timeout"], conf["EphemeralStorage"]["Size"]) == \
            (settings.memory_mb, settings.timeout_s, settings.ephemeral_storage_mb)
        handler = {"initialize": "worker.initialize.handler", "worker": "worker.infer.handler",
                   "summarize": "worker.summarize.handler"}[role]
        assert conf["ImageConfigResponse"]["ImageConfig"]["Command"] == [handler]
    assert lam.get_function_concurrency(FunctionName=f"{STACK}-worker")["ReservedConcurrentExecutions"] == 50
    sm_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-data-parallel"
    assert {"key": STACK_TAG, "value": STACK} in sfn.list_tags_for_resource(resourceArn=sm_arn)["tags"]
    machine = sfn.describe_state_machine(stateMachineArn=sm_arn)
    assert machine["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{STACK}-states"
    # The repository's file, unchanged except for the three substitutions.
    expected = Path("statemachines/data_parallel.asl.json").read_text()
    for key, role in (("InitializeFunctionArn", "initialize"), ("WorkerFunctionArn", "worker"),
                      ("SummarizeFunctionArn", "summarize")):
        expected = expected.replace("${" + key + "}", f"{P}-{role}")
    assert machine["definition"] == expected
    for role_name in (f"{STACK}-lambda-exec", f"{STACK}-states", f"{STACK}-ecs-exec"):
        assert tag in iam.list_role_tags(RoleName=role_name)["Tags"]
    for group in [f"/aws/lambda/{STACK}-{r}" for r in ("initialize", "worker", "summarize")] + [f"/ecs/{STACK}-rendezvous"]:
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        assert found and found[0]["retentionInDays"] == 14
        assert logs.list_tags_log_group(logGroupName=group)["tags"][STACK_TAG] == STACK
    repo = ecr.describe_repositories(repositoryNames=[STACK])["repositories"][0]
    assert tag in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    cluster = ecs.describe_clusters(clusters=[STACK], include=["TAGS"])["clusters"][0]
    assert {"key": STACK_TAG, "value": STACK} in cluster["tags"]
    service = ecs.describe_services(cluster=STACK, services=[f"{STACK}-rendezvous"])["services"][0]
    assert service["launchType"] == "FARGATE" and service["desiredCount"] == 1
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
    assert {"key": STACK_TAG, "value": STACK} in ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"]
    group = ec2.describe_security_groups(GroupIds=[result.resources["security group"]])["SecurityGroups"][0]
    assert {"Key": STACK_TAG, "Value": STACK} in group["Tags"]
    # Inbound: exactly the pairing port from anywhere and the health port from the VPC only.
    assert sorted((p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in group["IpPermissions"]) == \
        [("tcp", 8080, 8080), ("tcp", 10000, 10000)]
    vpc_cidr = ec2.describe_vpcs(VpcIds=[group["VpcId"]])["Vpcs"][0]["CidrBlock"]
    ranges = {p["FromPort"]: [r["CidrIp"] for r in p["IpRanges"]] for p in group["IpPermissions"]}
    assert ranges == {10000: ["0.0.0.0/0"], 8080: [vpc_cidr]}
    assert deployed_config(s3, aws.names(STACK))["rendezvous"]["domain"] == DOMAIN


def test_rendezvous_task_definition_runs_the_repository_server(aws):
    _deployed(aws)
    ecs = aws.client("ecs")
    td = ecs.describe_task_definition(taskDefinition=f"{STACK}-rendezvous", include=["TAGS"])
    definition, container = td["taskDefinition"], td["taskDefinition"]["containerDefinitions"][0]
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert (definition["cpu"], definition["memory"]) == ("256", "512")
    assert definition["executionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{STACK}-ecs-exec"
    assert "taskRoleArn" not in definition  # the server calls no AWS API: no task role at all
    assert container["image"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{STACK}:latest"
    assert container["entryPoint"] == ["python3", "-m", "rendezvous", "serve"]
    # It refuses to start without its secret, and v1 (no --allow-v1) is off.
    assert container["command"] == ["--port", "10000", "--health-port", "8080", "--require-secret"]
    assert sorted(p["containerPort"] for p in container["portMappings"]) == [8080, 10000]
    assert "/livez" in " ".join(container["healthCheck"]["command"])
    assert container["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{STACK}-rendezvous"
    assert {"key": STACK_TAG, "value": STACK} in td["tags"]


def test_lambda_role_is_least_privilege(aws):
    _deployed(aws)
    iam = aws.client("iam")
    trust = iam.get_role(RoleName=f"{STACK}-lambda-exec")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    st = _statements(_role_policy(aws, f"{STACK}-lambda-exec"))
    assert set(st) == {"Logs", "ListBucket", "ReadObjects", "WriteRunObjects"}
    assert st["Logs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert st["Logs"]["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{STACK}-{r}:*"
                                      for r in ("initialize", "worker", "summarize")]
    assert st["ListBucket"] == {"Sid": "ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
                                "Resource": [f"arn:aws:s3:::{BUCKET}"]}
    assert st["ReadObjects"]["Action"] == ["s3:GetObject"] and st["ReadObjects"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/*"]
    assert st["WriteRunObjects"]["Action"] == ["s3:PutObject"]
    assert st["WriteRunObjects"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/runs/*"]
    for s in st.values():
        assert s["Effect"] == "Allow" and "*" not in s["Resource"]


def test_states_role_invokes_exactly_the_three_functions(aws):
    _deployed(aws)
    iam = aws.client("iam")
    trust = iam.get_role(RoleName=f"{STACK}-states")["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-data-parallel"}
    st = _statements(_role_policy(aws, f"{STACK}-states"))
    assert set(st) == {"InvokeFunctions", "StartMapChildren", "ManageMapChildren", "ItemReaderResultWriter"}
    fns = [f"{P}-{r}" for r in ("initialize", "worker", "summarize")]
    assert st["InvokeFunctions"]["Action"] == ["lambda:InvokeFunction"]
    assert st["InvokeFunctions"]["Resource"] == fns + [f + ":*" for f in fns]
    assert st["StartMapChildren"]["Action"] == ["states:StartExecution"]
    assert st["StartMapChildren"]["Resource"] == [f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-data-parallel"]
    assert st["ManageMapChildren"]["Action"] == ["states:DescribeExecution", "states:StopExecution"]
    assert st["ManageMapChildren"]["Resource"] == [f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STACK}-data-parallel/*"]
    assert st["ItemReaderResultWriter"]["Action"] == ["s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts",
                                                      "s3:AbortMultipartUpload"]
    assert st["ItemReaderResultWriter"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/runs/*"]


def test_ecs_execution_role_and_repository_policy(aws):
    _deployed(aws)
    st = _statements(_role_policy(aws, f"{STACK}-ecs-exec"))
    assert set(st) == {"Logs", "EcrAuth", "PullImage", "ReadRendezvousSecret"}
    assert st["Logs"]["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/{STACK}-rendezvous:*"]
    # ECS resolves the container's secret with the execution role: this one parameter, read only.
    assert st["ReadRendezvousSecret"]["Action"] == ["ssm:GetParameters"]
    assert st["ReadRendezvousSecret"]["Resource"] == [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{STACK}/rendezvous/secret"]
    # GetAuthorizationToken supports no resource scoping; it is the only "*" in the stack.
    assert st["EcrAuth"] == {"Sid": "EcrAuth", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]}
    assert st["PullImage"]["Resource"] == [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{STACK}"]
    assert set(st["PullImage"]["Action"]) == {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                                              "ecr:BatchGetImage"}
    repo_policy = json.loads(aws.client("ecr").get_repository_policy(repositoryName=STACK)["policyText"])
    statement = repo_policy["Statement"][0]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Condition"]["StringLike"]["aws:sourceArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-*"


def test_deploy_is_idempotent_and_updates_in_place(aws):
    cfg, first, _ = _deployed(aws)
    ecs, ec2, lam, iam = (aws.client(s) for s in ("ecs", "ec2", "lambda", "iam"))
    again = deploy(aws, cfg, wait_rendezvous_s=0)
    assert again.created == []
    assert again.resources == first.resources  # same ARNs, same task definition revision
    assert len(ecs.list_task_definitions(familyPrefix=f"{STACK}-rendezvous")["taskDefinitionArns"]) == 1
    assert len(ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-rendezvous"]}])
               ["SecurityGroups"]) == 1
    # A hand-opened port is closed again; only the two rendezvous ports stay open.
    group_id = first.resources["security group"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    iam.put_role_policy(RoleName=f"{STACK}-lambda-exec", PolicyName="stale", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    changed = stack_config(**{"functions.worker.memory_mb": 3008, "functions.worker.reserved_concurrency": None,
                              "rendezvous.memory_mb": 1024})
    updated = deploy(aws, changed, wait_rendezvous_s=0)
    assert updated.created == []
    conf = lam.get_function_configuration(FunctionName=f"{STACK}-worker")
    assert conf["MemorySize"] == 3008
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=f"{STACK}-worker")
    assert updated.resources["task definition"].endswith(f"{STACK}-rendezvous:2")
    service = ecs.describe_services(cluster=STACK, services=[f"{STACK}-rendezvous"])["services"][0]
    assert service["taskDefinition"] == updated.resources["task definition"]
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    assert sorted(p["FromPort"] for p in perms) == [8080, 10000]
    assert iam.list_role_policies(RoleName=f"{STACK}-lambda-exec")["PolicyNames"] == ["lambdatwin-functions"]


def test_zip_packaging_with_layer(aws, tmp_path):
    layer = tmp_path / "deps.zip"
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("python/numpy/__init__.py", "")
    cfg = stack_config(**{"package.type": "zip", "package.layer_zip": str(layer), "rendezvous.enabled": False,
                          "rendezvous.domain": None})
    result = deploy(aws, cfg)
    lam = aws.client("lambda")
    conf = lam.get_function_configuration(FunctionName=f"{STACK}-worker")
    assert conf["PackageType"] == "Zip" and conf["Runtime"] == "python3.11"
    assert conf["Handler"] == "worker.infer.handler"
    assert len(conf["Layers"]) == 1 and f"layer:{STACK}-deps:1" in conf["Layers"][0]["Arn"]
    assert "ecs cluster" not in result.resources and "role ecs execution" not in result.resources
    # Same content: no new layer version, code unchanged.
    deploy(aws, cfg)
    assert len(lam.list_layer_versions(LayerName=f"{STACK}-deps")["LayerVersions"]) == 1
    names = zipfile.ZipFile(io.BytesIO(build_code_zip())).namelist()
    assert "worker/infer.py" in names and "worker/initialize.py" in names
    assert build_code_zip() == build_code_zip()  # reproducible: unchanged code is not re-deployed


def test_switching_packaging_replaces_the_function(aws):
    _deployed(aws)
    cfg = stack_config(**{"package.type": "zip", "rendezvous.enabled": False})
    deploy(aws, cfg)
    assert aws.client("lambda").get_function_configuration(FunctionName=f"{STACK}-worker")["PackageType"] == "Zip"


def test_no_rendezvous_task_yet_is_a_warning_not_a_failure(aws):
    _, result, _ = _deployed(aws)
    assert result.rendezvous is None
    assert any("lambdatwin aws repoint" in w for w in result.warnings)


def test_worker_image_uri_defaults_to_the_stack_repository(aws):
    cfg = stack_config()
    names = aws.names(STACK)
    assert deploy_mod.worker_image_uri(cfg, names) == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{STACK}:latest"
    own = stack_config(**{"package.image_uri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/worker:v3"})
    assert deploy_mod.worker_image_uri(own, names).endswith("team/worker:v3")


def test_deploy_generates_the_rendezvous_secret_and_wires_it_by_reference(aws):
    cfg, first, _ = _deployed(aws)
    ssm, lam, ecs = aws.client("ssm"), aws.client("lambda"), aws.client("ecs")
    parameter = f"/{STACK}/rendezvous/secret"
    stored = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    assert stored["Type"] == "SecureString" and len(stored["Value"]) >= 40  # 32 random bytes, URL-safe base64
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter)["TagList"]
    assert {"Key": STACK_TAG, "Value": STACK} in tags
    assert first.resources["rendezvous secret"] == parameter and "rendezvous secret" in first.created
    # The server reads it from the parameter at task start: the task definition holds a reference, not the value.
    td = ecs.describe_task_definition(taskDefinition=f"{STACK}-rendezvous")["taskDefinition"]
    container = td["containerDefinitions"][0]
    assert container["secrets"] == [{"name": "LAMBDATWIN_RENDEZVOUS_SECRET",
                                     "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter}"}]
    assert stored["Value"] not in json.dumps(td, default=str)
    # The worker function gets it in its (KMS-encrypted) environment; the other two do not need it.
    env = lam.get_function_configuration(FunctionName=f"{STACK}-worker").get("Environment", {}).get("Variables", {})
    assert env == {"LAMBDATWIN_RENDEZVOUS_SECRET": stored["Value"]}
    for role in ("initialize", "summarize"):
        other = lam.get_function_configuration(FunctionName=f"{STACK}-{role}").get("Environment", {}).get("Variables", {})
        assert "LAMBDATWIN_RENDEZVOUS_SECRET" not in other
    # Nowhere in what deploy saves for run/teardown, nor in the state machine.
    assert stored["Value"] not in json.dumps(deployed_config(aws.client("s3"), aws.names(STACK)))
    definition = aws.client("stepfunctions").describe_state_machine(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-data-parallel")["definition"]
    assert stored["Value"] not in definition
    # A second deploy keeps the same secret (running jobs keep working).
    again = deploy(aws, cfg, wait_rendezvous_s=0)
    assert "rendezvous secret" not in again.created
    assert ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"] == stored["Value"]


def test_protocol_v1_only_when_asked_for(aws):
    _deployed(aws, **{"rendezvous.allow_v1": True})
    td = aws.client("ecs").describe_task_definition(taskDefinition=f"{STACK}-rendezvous")["taskDefinition"]
    assert td["containerDefinitions"][0]["command"][-1] == "--allow-v1"
