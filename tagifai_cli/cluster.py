"""A local Kubeflow Pipelines cluster on kind, and the deployment of manifests/ to any cluster.

    tagifai cluster kind-up   [--no-deploy] [--dry-run]                 # make kind-up
    tagifai cluster deploy    [--overlay kind|cluster] [--dry-run]      # make deploy
    tagifai cluster kind-down [--keep-registry] [--dry-run]             # make kind-down

kind-up: a registry container on 127.0.0.1:5000 (the default TAGIFAI_REGISTRY, so `docker push
localhost:5000/tagifai-<step>:<tag>` is what the cluster pulls), the kind cluster of
manifests/kind/cluster.yaml wired to that registry, then ``deploy``; it ends by printing the UI
addresses. deploy: Kubeflow Pipelines 2.17.0 (cluster-scoped resources, then the overlay with the
platform-agnostic install) and the tagifai resources (MLflow with its database, the steps' settings
and warehouse volume), the MLflow database password as a random secret when it does not exist yet
(sent to kubectl on stdin: never on a command line, printed or written), then waits until every
deployment is available. Every step is idempotent: running it again changes nothing that is there.
``--dry-run`` prints the commands instead of running them.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
CLUSTER = "tagifai"
KIND_CONFIG = MANIFESTS / "kind" / "cluster.yaml"
REGISTRY_NAME = "tagifai-registry"
REGISTRY_IMAGE = "registry:2.8.3"
REGISTRY_PORT = 5000
UI_URL = "http://localhost:8080"
MLFLOW_URL = "http://localhost:5001"
OVERLAYS = ("kind", "cluster")


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


def _db_secret(password: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": "mlflow-db",
                "namespace": "tagifai",
                "labels": {"app.kubernetes.io/part-of": "tagifai"},
            },
            "data": {"password": base64.b64encode(password.encode()).decode()},
        }
    )


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
        deploy(sh, "kind", context=f"kind-{CLUSTER}", announce=False)
    print(
        f"\nKubeflow Pipelines UI: {UI_URL}\nMLflow: {MLFLOW_URL}\n"
        f"registry: localhost:{REGISTRY_PORT} "
        f"(push the step images there: TAGIFAI_REGISTRY=localhost:{REGISTRY_PORT})\n"
        f"submit: tagifai submit continual --host {UI_URL} --wait",
        file=sh.out,
    )


def deploy(
    sh: Shell, overlay: str = "kind", context: str | None = None, timeout: str = "15m", announce: bool = True
) -> None:
    if overlay not in OVERLAYS:
        raise ClusterError(f"overlay {overlay!r}: expected one of {', '.join(OVERLAYS)}")
    if not sh.dry_run:
        _require("kubectl")
    kubectl = ("kubectl", "--context", context) if context else ("kubectl",)
    sh.run(*kubectl, "apply", "-k", str(MANIFESTS / "kfp" / "cluster-scoped"))
    sh.run(*kubectl, "wait", "--for", "condition=established", "--timeout=120s", "crd", "--all")
    sh.run(*kubectl, "apply", "-f", str(MANIFESTS / "tagifai" / "namespace.yaml"))
    if sh.query(*kubectl, "-n", "tagifai", "get", "secret", "mlflow-db", "-o", "name") is None:
        sh.run(
            *kubectl,
            "create",
            "-f",
            "-",
            stdin=_db_secret(secrets.token_urlsafe(24)),
            stdin_label="Secret tagifai/mlflow-db (random password)",
        )
    sh.run(*kubectl, "apply", "-k", str(MANIFESTS / "overlays" / overlay))
    for namespace in ("kubeflow", "tagifai"):
        sh.run(
            *kubectl,
            "-n",
            namespace,
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            f"--timeout={timeout}",
        )
    if not announce:
        return
    if overlay == "kind":
        print(f"\nKubeflow Pipelines UI: {UI_URL}   MLflow: {MLFLOW_URL}", file=sh.out)
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
    deploy(Shell(dry_run=args.dry_run), args.overlay, context=args.context, timeout=args.timeout)
    return 0


def cmd_kind_down(args: argparse.Namespace) -> int:
    kind_down(Shell(dry_run=args.dry_run), keep_registry=args.keep_registry)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``tagifai cluster kind-up|deploy|kind-down``."""
    parser = subparsers.add_parser(
        "cluster",
        help="a local Kubeflow Pipelines on kind; deploy manifests/ to a cluster",
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
    dep.set_defaults(func=cmd_deploy)
    down = sub.add_parser("kind-down", help="delete the kind cluster (and the registry container)")
    down.add_argument("--keep-registry", action="store_true")
    down.set_defaults(func=cmd_kind_down)
    for p in (up, dep, down):
        p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser
