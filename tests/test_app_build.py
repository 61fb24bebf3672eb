"""Per-function venvs: content-hash cache, rebuild only what changed, no imports leaking from the twin,
and handler edits taking effect on the next cold start (real invocations through the Runtime API)."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from emulator.app.build import BuildCache
from emulator.cli.main import main
from emulator.app.deploy import LocalFunctions
from emulator.app.template import load_app
from emulator.lambda_runtime.service import LambdaService

PROBE = textwrap.dedent("""\
    import importlib, sys

    def handler(event, context):
        found = {}
        for name in event["modules"]:
            try:
                importlib.import_module(name)
                found[name] = True
            except ImportError:
                found[name] = False
        return {"found": found, "executable": sys.executable, "request_id": context.aws_request_id}
""")

TEMPLATE = textwrap.dedent("""\
    AWSTemplateFormatVersion: '2010-09-09'
    Transform: AWS::Serverless-2016-10-31
    Globals:
      Function:
        Runtime: python3.11
        Handler: app.handler
        Timeout: 30
    Resources:
      Bare:
        Type: AWS::Serverless::Function
        Properties: {CodeUri: bare/}
      WithDeps:
        Type: AWS::Serverless::Function
        Properties: {CodeUri: deps/}
""")


@pytest.fixture
def probe_app(tmp_path):
    for folder in ("bare", "deps"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text(PROBE)
    (tmp_path / "deps" / "requirements.txt").write_text("tabulate==0.9.0\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    return tmp_path


def test_venvs_cached_by_content_and_imports_do_not_leak(probe_app, tmp_path):
    cache = BuildCache(root=tmp_path / "cache")
    app = load_app(probe_app / "template.yaml", validate=False)
    functions = LocalFunctions(cache)
    configs = [functions.deploy_spec(spec) for spec in app.functions.values()]
    assert len(cache.builds) == 2  # one venv per distinct requirements file
    with LambdaService(configs, environment_factory=functions.environment) as service:
        modules = {"modules": ["tabulate", "torch", "moto", "rich", "emulator", "boto3", "awslambdaric"]}
        bare = service.invoke("Bare", modules)
        deps = service.invoke("WithDeps", modules)
    # The twin has torch, moto, rich and its own packages; none of them reaches a function.
    assert bare["found"] == {"tabulate": False, "torch": False, "moto": False, "rich": False, "emulator": False,
                             "boto3": True, "awslambdaric": True}
    assert deps["found"]["tabulate"] is True and deps["found"]["torch"] is False
    assert bare["executable"] != deps["executable"]

    # Same contents -> nothing rebuilt; a changed requirements file rebuilds that function only.
    again = BuildCache(root=tmp_path / "cache")
    for spec in app.functions.values():
        LocalFunctions(again).deploy_spec(spec)
    assert again.builds == []
    (probe_app / "deps" / "requirements.txt").write_text("tabulate==0.9.0\nsix\n")
    changed = BuildCache(root=tmp_path / "cache")
    built = {spec.logical_id: LocalFunctions(changed).deploy(spec.config(), spec.runtime, spec.code_dir) for spec in app.functions.values()}
    assert len(changed.builds) == 1 and set(built) == {"Bare", "WithDeps"}


def test_invoke_command_sees_handler_edits_on_the_next_cold_start(probe_app, tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"modules": []}))
    state = tmp_path / "state"
    argv = ["invoke", "Bare", "--template", str(probe_app / "template.yaml"), "--event", str(event), "--state-dir", str(state)]

    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["found"] == {}

    app_py = probe_app / "bare" / "app.py"
    app_py.write_text(app_py.read_text().replace('"found": found', '"found": found, "edited": True'))
    assert main(argv) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["edited"] is True
    assert "Init Duration" in out.err  # each invoke is a cold start

    # `lambdatwin logs Bare` prints both invocations' lines from the state dir.
    assert main(["logs", "Bare", "--state-dir", str(state)]) == 0
    logged = capsys.readouterr().out
    assert logged.count("REPORT RequestId:") == 2


def test_a_failing_requirements_install_is_one_actionable_line(tmp_path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "requirements.txt").write_text("this-package-does-not-exist-lambdatwin==0.0.1\n")
    from emulator.contracts.errors import EnvironmentSetupError

    with pytest.raises(EnvironmentSetupError) as info:
        BuildCache(root=tmp_path / "cache").build("fn", "python3.11", tmp_path / "fn")
    assert "pip install -r" in str(info.value) and "(function fn) failed" in str(info.value)
    assert "No matching distribution found for this-package-does-not-exist-lambdatwin" in str(info.value)
    assert not any(p.name.startswith("venv-") and (p / ".lambdatwin-complete").exists()
                   for p in (tmp_path / "cache").iterdir())
    shutil.rmtree(tmp_path / "cache")


def test_a_local_layer_is_on_the_function_path(tmp_path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("import shared\n\ndef handler(event, context):\n    return shared.VALUE\n")
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "layer" / "python" / "shared.py").write_text("VALUE = 'from the layer'\n")
    (tmp_path / "template.yaml").write_text(textwrap.dedent("""\
        AWSTemplateFormatVersion: '2010-09-09'
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Shared:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layer/, CompatibleRuntimes: [python3.11]}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: fn/
              Handler: app.handler
              Runtime: python3.11
              Architectures: [arm64]
              Layers: [!Ref Shared]
        """))
    app = load_app(tmp_path / "template.yaml")
    assert any("Architectures ['arm64']" in w for w in app.warnings)
    functions = LocalFunctions(BuildCache(root=tmp_path / "cache"))
    with LambdaService([functions.deploy_spec(app.functions["Fn"])], environment_factory=functions.environment) as service:
        assert service.invoke("Fn", {}) == "from the layer"
