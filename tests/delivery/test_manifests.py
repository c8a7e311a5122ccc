"""manifests/: render offline with `kubectl kustomize`, validate against Kubernetes 1.32 (the kind node
image), reference the upstream Kubeflow Pipelines base by tag, and agree with pipelines/platform.yaml.
"""

import shutil
import subprocess

import pytest
import yaml
from loopback import ROOT

MANIFESTS = ROOT / "manifests"
K8S_VERSION = "1.32.0"
KFP_VERSION = "2.17.0"
LOCAL = ["tagifai", "overlays/kind-local"]
REMOTE = ["kfp/cluster-scoped", "kfp/platform-agnostic", "overlays/kind", "overlays/cluster"]

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not on PATH")


def render(path: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _kinds(docs):
    return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}


@needs_kubectl
@pytest.mark.parametrize("path", LOCAL)
def test_local_kustomizations_render_offline_and_validate_strictly(path):
    import kubernetes_validate

    docs = render(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@needs_kubectl
def test_what_tagifai_adds_to_the_cluster():
    kinds = _kinds(render("overlays/kind-local"))
    assert kinds == {
        ("Namespace", None, "tagifai"),
        ("ConfigMap", "kubeflow", "tagifai-settings"),
        ("PersistentVolumeClaim", "kubeflow", "tagifai-data"),
        ("PersistentVolumeClaim", "tagifai", "mlflow-postgres"),
        ("Deployment", "tagifai", "mlflow-postgres"),
        ("Service", "tagifai", "mlflow-postgres"),
        ("PersistentVolumeClaim", "tagifai", "mlflow-artifacts"),
        ("Deployment", "tagifai", "mlflow"),
        ("Service", "tagifai", "mlflow"),
        ("Service", "kubeflow", "ml-pipeline-ui-nodeport"),
        ("Service", "tagifai", "mlflow-nodeport"),
    }
    # no Secret is rendered: their values never live in the repository
    assert not any(kind == "Secret" for kind, _, _ in kinds)


@needs_kubectl
def test_mlflow_has_a_database_backend_and_an_in_cluster_artifact_store():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render("tagifai")}
    mlflow = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]
    args = mlflow["containers"][0]["command"]
    assert "--backend-store-uri=postgresql://mlflow@mlflow-postgres.tagifai.svc.cluster.local:5432/mlflow" in args
    assert "--serve-artifacts" in args and "--artifacts-destination=/mlartifacts" in args
    env = {e["name"]: e for e in mlflow["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
    assert "mlflow.tagifai.svc.cluster.local:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in mlflow["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"mlflow-artifacts"}
    postgres = docs[("Deployment", "mlflow-postgres")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in postgres["env"]}
    assert env["POSTGRES_PASSWORD"]["secretKeyRef"]["name"] == "mlflow-db"
    # every image pinned to a version
    for d in docs.values():
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]


@needs_kubectl
def test_step_settings_and_platform_file_agree():
    """The ConfigMap, volume and secrets that pipelines/platform.yaml names are the ones the manifests define."""
    platform = yaml.safe_load((ROOT / "pipelines" / "platform.yaml").read_text())["kubernetes"]
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render("tagifai")}
    [config_map] = platform["config_map_env"]
    settings = docs[("ConfigMap", config_map["config_map"])]
    assert settings["metadata"]["namespace"] == "kubeflow"  # where standalone KFP runs the steps
    assert set(settings["data"]) <= set(config_map["env"])
    assert settings["data"]["TAGIFAI_WAREHOUSE"] == "duckdb:////data/tagifai/warehouse.duckdb"
    assert settings["data"]["TAGIFAI_MLFLOW_TRACKING_URI"] == "http://mlflow.tagifai.svc.cluster.local:5000"
    [pvc] = platform["pvcs"]
    assert docs[("PersistentVolumeClaim", pvc["pvc"])]["metadata"]["namespace"] == "kubeflow"
    assert settings["data"]["TAGIFAI_HOME"].startswith(pvc["mount_path"] + "/")
    templates = {
        d["metadata"]["name"] for f in (MANIFESTS / "secrets").glob("*.yaml") for d in yaml.safe_load_all(f.read_text())
    }
    secrets = platform.get("secret_env", []) + platform.get("secret_volumes", [])
    assert {s["secret"] for s in secrets} <= templates
    assert all(s["optional"] for s in secrets)


def test_secret_templates_validate_and_hold_placeholders_only():
    import kubernetes_validate

    for path in (MANIFESTS / "secrets").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            assert all(v.startswith("<") and v.endswith(">") for v in doc["stringData"].values()), path


@pytest.mark.parametrize("path", REMOTE)
def test_upstream_kubeflow_pipelines_is_referenced_by_tag(path):
    kustomization = yaml.safe_load((MANIFESTS / path / "kustomization.yaml").read_text())
    remote = [r for r in kustomization["resources"] if "://" in r or r.startswith("github.com")]
    local = [r for r in kustomization["resources"] if r not in remote]
    for ref in remote:
        assert ref.startswith("https://github.com/kubeflow/pipelines//manifests/kustomize/")
        assert ref.endswith(f"?ref={KFP_VERSION}")
    for ref in local:
        assert (MANIFESTS / path / ref).resolve().is_relative_to(MANIFESTS)
    if path.startswith("overlays/"):
        assert "../../kfp/platform-agnostic" in local


def test_kind_cluster_config_pins_the_node_image_and_maps_the_node_ports():
    config = yaml.safe_load((MANIFESTS / "kind" / "cluster.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    [node] = config["nodes"]
    assert node["image"].startswith(f"kindest/node:v{K8S_VERSION[:4]}") and "@sha256:" in node["image"]
    ports = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    nodeport_file = MANIFESTS / "overlays" / "kind-local" / "nodeports.yaml"
    nodeports = {p["nodePort"] for d in yaml.safe_load_all(nodeport_file.read_text()) for p in d["spec"]["ports"]}
    assert set(ports) == nodeports and ports[30080] == 8080
    assert all(m["listenAddress"] == "127.0.0.1" for m in node["extraPortMappings"])
    assert 'config_path = "/etc/containerd/certs.d"' in config["containerdConfigPatches"][0]


def test_cluster_commands_in_order_with_the_password_on_stdin_only(capsys, monkeypatch):
    from tagifai_cli import cluster
    from tagifai_cli.main import main

    monkeypatch.setattr(cluster.secrets, "token_urlsafe", lambda n: "SENTINEL-PASSWORD")
    assert main(["cluster", "kind-up", "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert commands[0].startswith("docker run -d --restart=always -p 127.0.0.1:5000:5000")
    config = MANIFESTS / "kind" / "cluster.yaml"
    assert commands[1] == f"kind create cluster --name tagifai --config {config} --wait 180s"
    applies = [c for c in commands if " apply -k " in c]
    assert applies == [
        f"kubectl --context kind-tagifai apply -k {MANIFESTS / 'kfp' / 'cluster-scoped'}",
        f"kubectl --context kind-tagifai apply -k {MANIFESTS / 'overlays' / 'kind'}",
    ]
    crds = commands.index("kubectl --context kind-tagifai wait --for condition=established --timeout=120s crd --all")
    assert commands.index(applies[0]) < crds < commands.index(applies[1])
    assert "Kubeflow Pipelines UI: http://localhost:8080" in out
    assert "SENTINEL" not in out and "U0VOVElORUw" not in out  # nor its base64
    assert main(["cluster", "kind-down", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "$ kind delete cluster --name tagifai"
    assert main(["cluster", "deploy", "--overlay", "cluster", "--dry-run"]) == 0
    assert f"apply -k {MANIFESTS / 'overlays' / 'cluster'}" in capsys.readouterr().out


def test_generated_database_secret_is_a_valid_secret():
    import base64
    import json

    import kubernetes_validate

    from tagifai_cli import cluster

    secret = json.loads(cluster._db_secret("pw"))
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    assert base64.b64decode(secret["data"]["password"]) == b"pw"
