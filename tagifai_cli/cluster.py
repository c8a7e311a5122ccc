"""A local Kubeflow Pipelines cluster on kind, and the deployment of manifests/ to any cluster.

    tagifai cluster kind-up   [--no-deploy] [--dry-run]                                     # make kind-up
    tagifai cluster deploy    [--overlay kind|cluster] [--registry REG] [--dry-run]         # make deploy
    tagifai cluster deploy    --overlay profile --namespace NS [--registry REG] [--dry-run] # multi-user Kubeflow
    tagifai cluster mlflow-image [--registry REG] [--push] [--dry-run]
    tagifai cluster kind-down [--keep-registry] [--dry-run]                                 # make kind-down

kind-up: a registry container on 127.0.0.1:5000 (the default TAGIFAI_REGISTRY, so `docker push
localhost:5000/tagifai-<step>:<tag>` is what the cluster pulls), the kind cluster of
manifests/kind/cluster.yaml wired to that registry, the MLflow server image built and pushed there,
then ``deploy``; it ends by printing the UI addresses. deploy: Kubeflow Pipelines 2.17.0
(cluster-scoped resources, then the overlay with the platform-agnostic install) and the tagifai
resources (MLflow with its database, the steps' settings and warehouse volume, the Job that makes
that volume writable by the steps' user), the MLflow database password as a random secret when it
does not exist yet (sent to kubectl on stdin: never on a command line, printed or written), then
waits until the Job is complete and every deployment is available. Every step is idempotent:
running it again changes nothing that is there. ``--dry-run`` prints the commands instead of
running them.

``--overlay profile --namespace NS``: multi-user Kubeflow, which is installed already; only the
tagifai resources, all in the profile namespace NS (manifests/overlays/profile), no Kubeflow
Pipelines install and no Namespace object. The namespace and the registry of the MLflow image are
parameters: the overlay is rendered through a kustomization in a temporary folder that sets them
(``namespace:``, ``images:``), beside a copy of manifests/ (kustomize refuses absolute paths).

mlflow-image: the MLflow tracking server image (images/mlflow.Dockerfile; not a pipeline step, so not
one of ``tagifai images``), ``<registry>/tagifai-mlflow-server:<mlflow version>``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tagifai_cli.commands import help_of

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
CLUSTER = "tagifai"
KIND_CONFIG = MANIFESTS / "kind" / "cluster.yaml"
REGISTRY_NAME = "tagifai-registry"
REGISTRY_IMAGE = "registry:2.8.3"
REGISTRY_PORT = 5000
UI_URL = "http://localhost:8080"
MLFLOW_URL = "http://localhost:5001"
OVERLAYS = ("kind", "cluster", "profile")
#: The Kubeflow Pipelines install of the kind and cluster overlays, and the namespaces of the tagifai
#: resources there (settings, data volume and its Job in kubeflow; MLflow in tagifai).
KFP_NAMESPACE = "kubeflow"
MLFLOW_NAMESPACE = "tagifai"
#: The MLflow server image: images/mlflow.Dockerfile, tagged with the MLflow version it holds
#: (requirements.lock's; images/requirements/mlflow-server.txt). The manifests name it under the
#: placeholder registry REGISTRY, which the overlays (kind: localhost:5000) or ``--registry`` replace.
MLFLOW_IMAGE = "tagifai-mlflow-server"
MLFLOW_VERSION = "3.17.2"
MLFLOW_DOCKERFILE = ROOT / "images" / "mlflow.Dockerfile"
IMAGE_PLACEHOLDER = f"REGISTRY/{MLFLOW_IMAGE}"
#: The one-shot Job that hands the data volume to uid 10001 (manifests/tagifai/data-permissions.yaml).
DATA_JOB = "tagifai-data-permissions"
#: The deployments of tagifai (what a profile deploy waits for: a profile namespace holds other ones).
DEPLOYMENTS = ("mlflow-postgres", "mlflow")


class ClusterError(RuntimeError):
    pass


class Shell:
    """Runs commands, or prints them (``dry_run``); queries answer "nothing there" in a dry run."""

    def __init__(self, dry_run: bool = False, out=None):
        self.dry_run = dry_run
        self.out = out or sys.stdout

    def run(self, *cmd: str, stdin: str | None = None, stdin_label: str = "") -> None:
        print("$ " + " ".join(cmd) + (f"  <<< {stdin_label}" if stdin is not None else ""), file=self.out, flush=True)
        if self.dry_run:
            return
        proc = subprocess.run(cmd, input=stdin, text=True, stdout=sys.stdout, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise ClusterError(
                f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )

    def query(self, *cmd: str) -> str | None:
        """stdout of a read-only command, None when it fails (or in a dry run)."""
        if self.dry_run:
            return None
        proc = subprocess.run(cmd, text=True, capture_output=True)
        return proc.stdout.strip() if proc.returncode == 0 else None


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ClusterError(
            f"needs {', '.join(missing)} on PATH (kind: https://kind.sigs.k8s.io, kubectl >= 1.32, docker)"
        )


def _hosts_toml() -> str:
    return f'[host."http://{REGISTRY_NAME}:{REGISTRY_PORT}"]\n'


def _registry_hosting() -> str:
    """The KEP-1755 ConfigMap that tells tools where the cluster's local registry is."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
            "data": {
                "localRegistryHosting.v1": f'host: "localhost:{REGISTRY_PORT}"\nhelp: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
            },
        }
    )


def _db_secret(password: str, namespace: str = MLFLOW_NAMESPACE) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": "mlflow-db",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "tagifai"},
            },
            "data": {"password": base64.b64encode(password.encode()).decode()},
        }
    )


def mlflow_image(registry: str) -> str:
    """``<registry>/tagifai-mlflow-server:<mlflow version>``."""
    return f"{registry.rstrip('/')}/{MLFLOW_IMAGE}:{MLFLOW_VERSION}"


def build_mlflow_image(sh: Shell, registry: str, push: bool = False) -> str:
    """Build images/mlflow.Dockerfile (context: images/) as :func:`mlflow_image`, and push it."""
    if not sh.dry_run:
        _require("docker")
    image = mlflow_image(registry)
    base = os.environ.get("BASE_IMAGE")  # as for the step images: a base from Debian packages where no registry answers
    build_args = ("--build-arg", f"BASE_IMAGE={base}") if base else ()
    sh.run("docker", "build", "-f", str(MLFLOW_DOCKERFILE), *build_args, "-t", image, str(MLFLOW_DOCKERFILE.parent))
    if push:
        sh.run("docker", "push", image)
    return image


def _check_name(namespace: str) -> str:
    """A Kubernetes namespace name (RFC 1123 label), or a ClusterError."""
    if not (
        0 < len(namespace) <= 63
        and namespace[0].isalnum()
        and namespace[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in namespace)
    ):
        raise ClusterError(f"namespace {namespace!r}: expected a DNS label (lower-case letters, digits, '-')")
    return namespace


def kustomization(overlay: str, namespace: str | None = None, registry: str | None = None) -> dict:
    """The kustomization that renders ``overlay`` with a namespace and the MLflow image's registry.

    It lives in ``deploy/`` of a folder that holds a copy of manifests/ (:func:`rendered_overlay`).
    ``namespace`` moves every namespaced resource there (kustomize also rewrites references to it).
    """
    doc: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../manifests/overlays/{overlay}"],
    }
    if namespace:
        doc["namespace"] = _check_name(namespace)
    if registry:
        doc["images"] = [{"name": IMAGE_PLACEHOLDER, "newName": f"{registry.rstrip('/')}/{MLFLOW_IMAGE}"}]
    return doc


@contextmanager
def rendered_overlay(overlay: str, namespace: str | None = None, registry: str | None = None) -> Iterator[Path]:
    """A temporary folder to ``kubectl apply -k`` (or ``kubectl kustomize``): :func:`kustomization` of
    ``overlay`` beside a copy of manifests/. Removed on exit."""
    with tempfile.TemporaryDirectory(prefix="tagifai-deploy-") as tmp:
        shutil.copytree(MANIFESTS, Path(tmp) / "manifests")
        (Path(tmp) / "deploy").mkdir()
        text = yaml.safe_dump(kustomization(overlay, namespace, registry), sort_keys=False)
        (Path(tmp) / "deploy" / "kustomization.yaml").write_text(text)
        yield Path(tmp) / "deploy"


def kind_up(sh: Shell, deploy_after: bool = True) -> None:
    if not sh.dry_run:
        _require("kind", "docker", "kubectl")
    if sh.query("docker", "inspect", "-f", "{{.State.Running}}", REGISTRY_NAME) != "true":
        if sh.query("docker", "inspect", REGISTRY_NAME) is not None:
            sh.run("docker", "start", REGISTRY_NAME)
        else:
            sh.run(
                "docker",
                "run",
                "-d",
                "--restart=always",
                "-p",
                f"127.0.0.1:{REGISTRY_PORT}:5000",
                "--network",
                "bridge",
                "--name",
                REGISTRY_NAME,
                REGISTRY_IMAGE,
            )
    clusters = (sh.query("kind", "get", "clusters") or "").split()
    if CLUSTER not in clusters:
        sh.run("kind", "create", "cluster", "--name", CLUSTER, "--config", str(KIND_CONFIG), "--wait", "180s")
    nodes = (sh.query("kind", "get", "nodes", "--name", CLUSTER) or f"{CLUSTER}-control-plane").split()
    certs = f"/etc/containerd/certs.d/localhost:{REGISTRY_PORT}"
    for node in nodes:
        sh.run("docker", "exec", node, "mkdir", "-p", certs)
        sh.run(
            "docker",
            "exec",
            "-i",
            node,
            "cp",
            "/dev/stdin",
            f"{certs}/hosts.toml",
            stdin=_hosts_toml(),
            stdin_label="hosts.toml",
        )
    networks = sh.query("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", REGISTRY_NAME) or "{}"
    if '"kind"' not in networks:
        sh.run("docker", "network", "connect", "kind", REGISTRY_NAME)
    sh.run(
        "kubectl",
        "--context",
        f"kind-{CLUSTER}",
        "apply",
        "-f",
        "-",
        stdin=_registry_hosting(),
        stdin_label="ConfigMap kube-public/local-registry-hosting",
    )
    if deploy_after:
        build_mlflow_image(sh, f"localhost:{REGISTRY_PORT}", push=True)  # the kind overlay's MLflow image
        deploy(sh, "kind", context=f"kind-{CLUSTER}", announce=False)
    print(
        f"\nKubeflow Pipelines UI: {UI_URL}\nMLflow: {MLFLOW_URL}\n"
        f"registry: localhost:{REGISTRY_PORT} "
        f"(push the step images there: TAGIFAI_REGISTRY=localhost:{REGISTRY_PORT})\n"
        f"submit: tagifai submit continual --host {UI_URL} --wait",
        file=sh.out,
    )


def deploy(
    sh: Shell,
    overlay: str = "kind",
    context: str | None = None,
    timeout: str = "15m",
    announce: bool = True,
    namespace: str | None = None,
    registry: str | None = None,
) -> None:
    """Apply ``overlay``: kind (KFP + tagifai + host ports), cluster (KFP + tagifai, the MLflow image from
    ``registry``, else TAGIFAI_REGISTRY) or profile (tagifai only, in the profile ``namespace``, else
    TAGIFAI_KFP_NAMESPACE)."""
    if overlay not in OVERLAYS:
        raise ClusterError(f"overlay {overlay!r}: expected one of {', '.join(OVERLAYS)}")
    from tagifai.config import get_settings

    settings = get_settings(export_secrets=False)
    if overlay == "profile":
        namespace = namespace or settings.kfp_namespace
        if not namespace:
            raise ClusterError("--overlay profile needs --namespace PROFILE_NAMESPACE (or TAGIFAI_KFP_NAMESPACE)")
        _check_name(namespace)
    elif namespace:
        raise ClusterError(
            f"--namespace is for --overlay profile; the {overlay} overlay puts the steps' resources in "
            f"{KFP_NAMESPACE} and MLflow in {MLFLOW_NAMESPACE}"
        )
    if overlay == "kind":
        if registry and registry.rstrip("/") != f"localhost:{REGISTRY_PORT}":
            raise ClusterError(f"--registry: the kind overlay pulls the MLflow image from localhost:{REGISTRY_PORT}")
        registry = None  # manifests/overlays/kind-local names it
    else:
        registry = (registry or settings.registry).rstrip("/")
    if not sh.dry_run:
        _require("kubectl")
    kubectl = ("kubectl", "--context", context) if context else ("kubectl",)
    if overlay == "profile":
        if not sh.dry_run and sh.query(*kubectl, "get", "namespace", namespace, "-o", "name") is None:
            raise ClusterError(
                f"no namespace {namespace!r} (or no access to it): create the Kubeflow Profile first "
                "(docs/deploy.md, Multi-user Kubeflow)"
            )
        steps_namespace = db_namespace = namespace
    else:
        sh.run(*kubectl, "apply", "-k", str(MANIFESTS / "kfp" / "cluster-scoped"))
        sh.run(*kubectl, "wait", "--for", "condition=established", "--timeout=120s", "crd", "--all")
        sh.run(*kubectl, "apply", "-f", str(MANIFESTS / "tagifai" / "namespace.yaml"))
        steps_namespace, db_namespace = KFP_NAMESPACE, MLFLOW_NAMESPACE
    if sh.query(*kubectl, "-n", db_namespace, "get", "secret", "mlflow-db", "-o", "name") is None:
        sh.run(
            *kubectl,
            "create",
            "-f",
            "-",
            stdin=_db_secret(secrets.token_urlsafe(24), db_namespace),
            stdin_label=f"Secret {db_namespace}/mlflow-db (random password)",
        )
    if overlay == "kind":
        sh.run(*kubectl, "apply", "-k", str(MANIFESTS / "overlays" / overlay))
    else:
        with rendered_overlay(overlay, namespace, registry) as folder:
            print(
                f"# {folder}: manifests/overlays/{overlay}"
                + (f", namespace {namespace}" if namespace else "")
                + f", MLflow image {mlflow_image(registry)}",
                file=sh.out,
            )
            sh.run(*kubectl, "apply", "-k", str(folder))
    job_timeout, wait_for = "--timeout=5m", f"--timeout={timeout}"
    sh.run(*kubectl, "-n", steps_namespace, "wait", "--for=condition=complete", f"job/{DATA_JOB}", job_timeout)
    if overlay == "profile":  # a profile namespace holds the user's other deployments: wait for ours only
        deployments = [f"deployment/{d}" for d in DEPLOYMENTS]
        sh.run(*kubectl, "-n", namespace, "wait", "--for=condition=Available", *deployments, wait_for)
    else:
        for ns in (KFP_NAMESPACE, MLFLOW_NAMESPACE):
            sh.run(*kubectl, "-n", ns, "wait", "--for=condition=Available", "deployment", "--all", wait_for)
    if not announce:
        return
    if overlay == "kind":
        print(f"\nKubeflow Pipelines UI: {UI_URL}   MLflow: {MLFLOW_URL}", file=sh.out)
    elif overlay == "profile":
        print(
            f"\nMLflow: kubectl port-forward -n {namespace} svc/mlflow 5001:5000, then http://localhost:5001\n"
            f"submit: tagifai submit continual --namespace {namespace} --wait  (the steps run in {namespace})",
            file=sh.out,
        )
    else:
        print(
            "\nKubeflow Pipelines UI: kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80, then http://localhost:8080\n"
            "MLflow: kubectl port-forward -n tagifai svc/mlflow 5001:5000, then http://localhost:5001",
            file=sh.out,
        )


def kind_down(sh: Shell, keep_registry: bool = False) -> None:
    if not sh.dry_run:
        _require("kind", "docker")
    sh.run("kind", "delete", "cluster", "--name", CLUSTER)
    if not keep_registry and (sh.dry_run or sh.query("docker", "inspect", REGISTRY_NAME) is not None):
        sh.run("docker", "rm", "-f", REGISTRY_NAME)


# ------------------------------------------------------------------------------------------------
# command line: `tagifai cluster ...` (tagifai_cli.main wires add_parser in; errors are raised, main prints them)


def cmd_kind_up(args: argparse.Namespace) -> int:
    kind_up(Shell(dry_run=args.dry_run), deploy_after=not args.no_deploy)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    deploy(
        Shell(dry_run=args.dry_run),
        args.overlay,
        context=args.context,
        timeout=args.timeout,
        namespace=args.namespace,
        registry=args.registry,
    )
    return 0


def cmd_mlflow_image(args: argparse.Namespace) -> int:
    from tagifai.config import get_settings

    registry = args.registry or get_settings(export_secrets=False).registry
    print(build_mlflow_image(Shell(dry_run=args.dry_run), registry, push=args.push))
    return 0


def cmd_kind_down(args: argparse.Namespace) -> int:
    kind_down(Shell(dry_run=args.dry_run), keep_registry=args.keep_registry)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``tagifai cluster kind-up|deploy|kind-down``."""
    parser = subparsers.add_parser(
        "cluster",
        help=help_of("cluster"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cluster_command", required=True)
    up = sub.add_parser("kind-up", help="local registry + kind cluster + deploy; prints the UI address")
    up.add_argument("--no-deploy", action="store_true", help="the registry and the cluster only")
    up.set_defaults(func=cmd_kind_up)
    dep = sub.add_parser("deploy", help="Kubeflow Pipelines 2.17.0 + tagifai to the current kubectl context")
    dep.add_argument("--overlay", default="kind", choices=OVERLAYS)
    dep.add_argument("--context", help="kubectl context (default: the current one)")
    dep.add_argument("--timeout", default="15m", help="wait for the deployments (kubectl duration)")
    dep.add_argument(
        "--namespace",
        help="--overlay profile: the Kubeflow profile namespace the steps run in (default TAGIFAI_KFP_NAMESPACE)",
    )
    dep.add_argument(
        "--registry",
        help="where the MLflow image was pushed (cluster, profile: default TAGIFAI_REGISTRY; kind: localhost:5000)",
    )
    dep.set_defaults(func=cmd_deploy)
    img = sub.add_parser("mlflow-image", help="build (and push) the MLflow server image, images/mlflow.Dockerfile")
    img.add_argument("--registry", help="default TAGIFAI_REGISTRY (localhost:5000)")
    img.add_argument("--push", action="store_true")
    img.set_defaults(func=cmd_mlflow_image)
    down = sub.add_parser("kind-down", help="delete the kind cluster (and the registry container)")
    down.add_argument("--keep-registry", action="store_true")
    down.set_defaults(func=cmd_kind_down)
    for p in (up, dep, img, down):
        p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser
