"""The Kubernetes manifests validate offline against the Kubernetes schemas (strict), and the
image, the manifests and the chart run `maestro serve` reachable, with tokens and an allow-list."""

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro_server.cli.main import build_parser
from maestro_server.cli.serve import exposure_warning
from maestro_server.definition import load_workflow

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate comes with the deploy extra (make test)"
)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
@pytest.mark.parametrize("version", ["1.29", "1.33"])
def test_manifest_is_valid(path: Path, version: str) -> None:
    """Every object passes `kubernetes-validate --strict` (unknown keys are errors)."""
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_probes_use_the_health_service_on_a_numeric_port() -> None:
    """Native gRPC probes: numeric port; readiness asks for the Orchestrator service."""
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["grpc"] == {
        "port": 8080,
        "service": "maestro.v1.Orchestrator",
    }
    assert container["livenessProbe"]["grpc"] == {"port": 8080}
    grace = next(a for a in container["args"] if a.startswith("--shutdown-grace="))
    assert spec["terminationGracePeriodSeconds"] > int(grace.split("=")[1].rstrip("s")) + 5


def test_configmap_workflows_are_valid() -> None:
    """The workflows shipped in the ConfigMap validate."""
    configmap = yaml.safe_load((ROOT / "deploy/kubernetes/configmap.yaml").read_text())
    for name, text in configmap["data"].items():
        assert load_workflow(text, path=name).name


CHART = ROOT / "deploy" / "helm" / "maestro"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "replicaCount": 5,
                "retention": "",
                "allowEndpoints": [],
                "workflows": {
                    "onboarding.yaml": (ROOT / "examples/onboarding/workflow.yaml").read_text()
                },
            },
            id="with workflows",
        ),
    ],
)
def test_helm_chart_renders_valid_manifests(values: dict[str, object]) -> None:
    """The chart lints clean and renders objects that pass strict schema validation; the
    workflows it ships come out unchanged and valid."""
    helm = pytest.importorskip("helm_python.chart", reason="helm-python-sdk: the deploy extra")
    report = helm.lint(str(CHART), values, strict=True)
    assert report["errors"] == [], report
    rendered = helm.Chart.load(str(CHART)).render(values, name="maestro", namespace="default")
    kinds = []
    for name, text in rendered.items():
        if not name.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                kubernetes_validate.validate(document, "1.33", strict=True)
                kinds.append(document["kind"])
                if document["kind"] == "ConfigMap":
                    for file, workflow in document["data"].items():
                        assert load_workflow(workflow, path=file).name == "user_onboarding"
    expected = {"Deployment", "Service", "PodDisruptionBudget"}
    assert set(kinds) == expected | ({"ConfigMap"} if values.get("workflows") else set())


def _serve_args(args: list[str]) -> argparse.Namespace:
    """`maestro serve` with these arguments, as the CLI reads them."""
    return build_parser().parse_args(["serve", *args])


def _listens_everywhere_with_tokens_and_an_allow_list(args: list[str]) -> argparse.Namespace:
    parsed = _serve_args(args)
    assert parsed.host == "0.0.0.0"
    assert parsed.auth_token_file is not None and not parsed.insecure
    assert exposure_warning(parsed) is None  # starts, without the insecure warning
    return parsed


def _dockerfile_instruction(name: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    words: list[str] = json.loads(line.removeprefix(f"{name} "))
    return words


def test_dockerfile_listens_everywhere_with_tokens_and_an_allow_list() -> None:
    """The image's entrypoint binds 0.0.0.0 with a token file; its default arguments name an
    allow-list."""
    entrypoint = _dockerfile_instruction("ENTRYPOINT")
    assert entrypoint[:2] == ["maestro", "serve"]
    parsed = _listens_everywhere_with_tokens_and_an_allow_list(
        entrypoint[2:] + _dockerfile_instruction("CMD")
    )
    assert str(parsed.auth_token_file) == "/run/secrets/maestro-tokens"
    assert parsed.allow_endpoint == ["*.svc.cluster.local:*"]


def _token_file_is_mounted(spec: dict[str, Any], parsed: argparse.Namespace) -> None:
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    (volume,) = [name for name in secrets if str(parsed.auth_token_file).startswith(mounts[name])]
    assert secrets[volume] == "maestro-tokens"


def test_kubernetes_deployment_listens_everywhere_with_tokens_and_an_allow_list() -> None:
    """The pods bind every interface, with tokens from a Secret and an endpoint allow-list."""
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    parsed = _listens_everywhere_with_tokens_and_an_allow_list(spec["containers"][0]["args"])
    assert parsed.allow_endpoint
    _token_file_is_mounted(spec, parsed)


def test_helm_chart_listens_everywhere_with_tokens_and_an_allow_list() -> None:
    """The chart's Deployment, with default values, does the same."""
    helm = pytest.importorskip("helm_python.chart", reason="helm-python-sdk: the deploy extra")
    rendered = helm.Chart.load(str(CHART)).render({}, name="maestro", namespace="default")
    (deployment,) = [
        document
        for name, text in rendered.items()
        if name.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document and document["kind"] == "Deployment"
    ]
    spec = deployment["spec"]["template"]["spec"]
    parsed = _listens_everywhere_with_tokens_and_an_allow_list(spec["containers"][0]["args"])
    assert parsed.allow_endpoint == ["*.svc.cluster.local:*"]
    _token_file_is_mounted(spec, parsed)


def _writable_temp_dir(spec: dict[str, Any]) -> None:
    """The root file system is read-only, and TMPDIR names a writable emptyDir mount."""
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[env["TMPDIR"]]
    assert not mount.get("readOnly", False)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert "emptyDir" in volumes[mount["name"]]


def test_kubernetes_deployment_has_a_writable_temp_dir() -> None:
    """Compiling `protos:` and mTLS client certificates need one (tests/api/test_temp_dir.py
    runs the server so)."""
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    _writable_temp_dir(deployment["spec"]["template"]["spec"])


@pytest.mark.parametrize("values", [{}, {"workflows": {"w.yaml": "name: w"}}])
def test_helm_chart_has_a_writable_temp_dir(values: dict[str, object]) -> None:
    """The chart's Deployment too, with or without workflows."""
    helm = pytest.importorskip("helm_python.chart", reason="helm-python-sdk: the deploy extra")
    rendered = helm.Chart.load(str(CHART)).render(values, name="maestro", namespace="default")
    (deployment,) = [
        document
        for name, text in rendered.items()
        if name.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document and document["kind"] == "Deployment"
    ]
    _writable_temp_dir(deployment["spec"]["template"]["spec"])
