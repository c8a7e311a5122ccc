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
LOCAL = ["tagifai", "overlays/kind-local", "overlays/profile"]
REMOTE = ["kfp/cluster-scoped", "kfp/platform-agnostic", "overlays/kind", "overlays/cluster"]

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not on PATH")


def render(path) -> list[dict]:
    folder = MANIFESTS / path  # a folder under manifests/, or an absolute one
    out = subprocess.run(["kubectl", "kustomize", str(folder)], check=True, capture_output=True, text=True, timeout=60)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_profile(namespace: str, registry: str | None = None) -> list[dict]:
    """The profile overlay as `tagifai cluster deploy --overlay profile --namespace NS` applies it."""
    from tagifai_cli import cluster

    with cluster.rendered_overlay("profile", namespace, registry) as folder:
        return render(folder)


def _pod_specs(docs):
    return {
        (d["kind"], d["metadata"]["name"]): d["spec"]["template"]["spec"]
        for d in docs
        if "template" in d.get("spec", {})
    }


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
        ("Job", "kubeflow", "tagifai-data-permissions"),
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
    # PostgreSQL by its short name: always in MLflow's namespace (tagifai, or a profile's)
    assert "--backend-store-uri=postgresql://mlflow@mlflow-postgres:5432/mlflow" in args
    assert "--serve-artifacts" in args and "--artifacts-destination=/mlartifacts" in args
    env = {e["name"]: e for e in mlflow["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
    assert "mlflow.tagifai.svc.cluster.local:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"]
    assert "mlflow:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")  # the profile overlay's URI
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
def test_mlflow_runs_its_own_image_with_the_driver_and_installs_nothing_at_start():
    from tagifai_cli import cluster

    mlflow = _pod_specs(render("tagifai"))[("Deployment", "mlflow")]
    # no init container (it used to pip-install psycopg2-binary at every start: internet in the cluster)
    assert "initContainers" not in mlflow
    for container in mlflow["containers"]:
        assert not any("pip" in str(part) for part in container.get("command", []) + container.get("args", []))
        assert "PYTHONPATH" not in {e["name"] for e in container.get("env", [])}
    [container] = mlflow["containers"]
    # the image built from images/mlflow.Dockerfile, under the placeholder registry the overlays replace
    assert container["image"] == f"REGISTRY/tagifai-mlflow-server:{cluster.MLFLOW_VERSION}"
    assert container["image"] == cluster.mlflow_image("REGISTRY")
    kind = _pod_specs(render("overlays/kind-local"))[("Deployment", "mlflow")]
    assert kind["containers"][0]["image"] == f"localhost:5000/tagifai-mlflow-server:{cluster.MLFLOW_VERSION}"
    profile = _pod_specs(render_profile("team-a", "europe-docker.pkg.dev/p/r"))[("Deployment", "mlflow")]
    assert (
        profile["containers"][0]["image"] == f"europe-docker.pkg.dev/p/r/tagifai-mlflow-server:{cluster.MLFLOW_VERSION}"
    )
    # the image's user, and the artifact volume's group
    context = mlflow["securityContext"]
    assert (context["runAsUser"], context["fsGroup"], context["runAsNonRoot"]) == (10001, 10001, True)


def test_mlflow_image_installs_a_hashed_lock_of_requirements_lock_s_mlflow():
    from tagifai_cli import cluster

    dockerfile = (ROOT / "images" / "mlflow.Dockerfile").read_text()
    code = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    [install] = [line for line in code if "pip install" in line]
    assert "--require-hashes" in install and "-r /opt/mlflow/requirements.txt" in install
    assert "COPY requirements/mlflow-server.txt /opt/mlflow/requirements.txt" in code
    assert "USER 10001:10001" in code
    lock = (ROOT / "images" / "requirements" / "mlflow-server.txt").read_text()
    pins = dict(
        line.split(" ")[0].split("==") for line in lock.splitlines() if "==" in line and not line.startswith("#")
    )
    freeze = dict(
        line.strip().split("==", 1)
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["mlflow"] == freeze["mlflow"] == cluster.MLFLOW_VERSION
    assert pins["psycopg2-binary"] == "2.9.11"
    for package, version in pins.items():  # the server runs the versions the tests ran
        if package in freeze:
            assert version == freeze[package], package
    entries = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(entries) == len(pins) and lock.count("--hash=sha256:") >= len(pins)


@needs_kubectl
def test_data_volume_is_handed_to_the_steps_user_by_a_one_shot_job():
    platform = yaml.safe_load((ROOT / "pipelines" / "platform.yaml").read_text())["kubernetes"]
    docs = render("tagifai")
    job = _pod_specs(docs)[("Job", "tagifai-data-permissions")]
    [pvc] = platform["pvcs"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in job["volumes"]] == [pvc["pvc"]]
    [container] = job["containers"]
    assert container["volumeMounts"][0]["mountPath"] == pvc["mount_path"]
    script = container["command"][-1]
    user = platform["security_context"]
    assert f"chown {user['run_as_user']}:{user['run_as_group']}" in script
    assert job["securityContext"]["runAsUser"] == 0 and set(container["securityContext"]["capabilities"]["add"]) <= {
        "CHOWN",
        "FOWNER",
        "DAC_OVERRIDE",
    }
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert ":" in container["image"] and not container["image"].endswith(":latest")


@needs_kubectl
@pytest.mark.parametrize("namespace", ["kubeflow-user-example-com", "team-a"])
def test_profile_overlay_puts_everything_in_the_given_namespace(namespace):
    import kubernetes_validate

    docs = render_profile(namespace, "registry.example.com/ml")
    kinds = _kinds(docs)
    # the suite's resources, no Namespace (the Profile controller owns it), nothing cluster-scoped
    assert {(kind, name) for kind, _, name in kinds} == {
        ("ConfigMap", "tagifai-settings"),
        ("PersistentVolumeClaim", "tagifai-data"),
        ("Job", "tagifai-data-permissions"),
        ("PersistentVolumeClaim", "mlflow-postgres"),
        ("Deployment", "mlflow-postgres"),
        ("Service", "mlflow-postgres"),
        ("PersistentVolumeClaim", "mlflow-artifacts"),
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
    }
    assert {ns for _, ns, _ in kinds} == {namespace}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    settings = {(d["kind"], d["metadata"]["name"]): d for d in docs}[("ConfigMap", "tagifai-settings")]
    # MLflow beside the steps, by the short name the server accepts
    assert settings["data"]["TAGIFAI_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert not any("tagifai.svc" in str(v) for v in settings["data"].values())
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for key, spec in _pod_specs(docs).items():
        pod = by_key[key]["spec"]["template"]["metadata"]
        assert pod["annotations"]["sidecar.istio.io/inject"] == "false", key
        secret_refs = [
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in spec["containers"]
            for e in c.get("env", [])
            if "valueFrom" in e
        ]
        assert set(secret_refs) <= {"mlflow-db"}
    # the plain overlay renders for the example profile of Kubeflow's manifests
    assert {ns for _, ns, _ in _kinds(render("overlays/profile"))} == {"kubeflow-user-example-com"}


def test_profile_namespace_is_checked():
    from tagifai_cli import cluster

    for bad in ("Team-A", "-a", "a_b", "a.b", "a" * 64):
        with pytest.raises(cluster.ClusterError):
            cluster.kustomization("profile", bad)
    assert cluster.kustomization("profile", "team-a", "r.example/x/")["images"] == [
        {"name": "REGISTRY/tagifai-mlflow-server", "newName": "r.example/x/tagifai-mlflow-server"}
    ]


@needs_kubectl
def test_step_settings_and_platform_file_agree():
    """The ConfigMap, volume and secrets that pipelines/platform.yaml names are the ones the manifests define."""
    platform = yaml.safe_load((ROOT / "pipelines" / "platform.yaml").read_text())["kubernetes"]
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render("tagifai")}
    required, optional = platform["config_map_env"]
    assert required["config_map"] == optional["config_map"]
    settings = docs[("ConfigMap", required["config_map"])]
    assert settings["metadata"]["namespace"] == "kubeflow"  # where standalone KFP runs the steps
    # every key the steps require is in the ConfigMap (a missing one fails the pod), and nothing else
    assert not required["optional"] and set(required["env"]) <= set(settings["data"])
    assert set(settings["data"]) <= set(required["env"]) | set(optional["env"])
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
    assert main(["cluster", "deploy", "--overlay", "cluster", "--registry", "r.example/x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "manifests/overlays/cluster, MLflow image r.example/x/tagifai-mlflow-server:" in out
    assert "wait --for=condition=complete job/tagifai-data-permissions" in out


def test_kind_up_builds_and_pushes_the_mlflow_image_before_deploying(capsys):
    from tagifai_cli import cluster
    from tagifai_cli.main import main

    assert main(["cluster", "kind-up", "--dry-run"]) == 0
    commands = [line[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    image = f"localhost:5000/tagifai-mlflow-server:{cluster.MLFLOW_VERSION}"
    build = f"docker build -f {ROOT / 'images' / 'mlflow.Dockerfile'} -t {image} {ROOT / 'images'}"
    deploy = next(i for i, c in enumerate(commands) if c.endswith(f"apply -k {MANIFESTS / 'overlays' / 'kind'}"))
    assert commands.index(build) < commands.index(f"docker push {image}") < deploy


def test_profile_deploy_in_dry_run(capsys, monkeypatch):
    from tagifai_cli import cluster
    from tagifai_cli.main import main

    monkeypatch.setattr(cluster.secrets, "token_urlsafe", lambda n: "SENTINEL-PASSWORD")
    monkeypatch.delenv("TAGIFAI_KFP_NAMESPACE", raising=False)
    argv = ["cluster", "deploy", "--overlay", "profile", "--namespace", "team-a", "--registry", "r.example/x"]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    # no Kubeflow Pipelines install, no Namespace: multi-user Kubeflow and the Profile are there already
    assert not any("kfp" in c or "namespace.yaml" in c for c in commands)
    assert "kubectl create -f -  <<< Secret team-a/mlflow-db (random password)" in commands
    assert "manifests/overlays/profile, namespace team-a, MLflow image r.example/x/tagifai-mlflow-server:" in out
    assert "kubectl -n team-a wait --for=condition=complete job/tagifai-data-permissions --timeout=5m" in commands
    assert any(
        c.startswith("kubectl -n team-a wait --for=condition=Available deployment/mlflow-postgres ") for c in commands
    )
    assert "SENTINEL" not in out
    assert main(["cluster", "deploy", "--overlay", "profile", "--dry-run"]) == 1  # no namespace
    assert main(["cluster", "deploy", "--overlay", "cluster", "--namespace", "team-a", "--dry-run"]) == 1
    assert main(["cluster", "deploy", "--overlay", "kind", "--registry", "elsewhere.example", "--dry-run"]) == 1


def test_generated_database_secret_is_a_valid_secret():
    import base64
    import json

    import kubernetes_validate

    from tagifai_cli import cluster

    secret = json.loads(cluster._db_secret("pw"))
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    assert base64.b64decode(secret["data"]["password"]) == b"pw"
    assert secret["metadata"]["namespace"] == "tagifai"
    assert json.loads(cluster._db_secret("pw", "team-a"))["metadata"]["namespace"] == "team-a"
