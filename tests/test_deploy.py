"""The Kubernetes manifests validate offline against the Kubernetes schemas (strict)."""

from pathlib import Path

import pytest
import yaml

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
