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
