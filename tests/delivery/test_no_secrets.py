"""No compiled YAML, manifest or log holds a secret value.

Secrets are set to sentinels in the environment and in files, the delivery commands run for real
(in a subprocess, against the loopback KFP API), and everything they wrote or printed is searched.
The token must reach the server (in the Authorization header) and nowhere else.
"""

import os
import re
import subprocess
import sys

from loopback import COMPILED, ROOT, FakeKFP

SENTINELS = {
    "TAGIFAI_KFP_TOKEN": "sentinel-kfp-token-7f3a",
    "MLFLOW_TRACKING_PASSWORD": "sentinel-mlflow-password-91c2",
    "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-55d0",
}
FILE_TOKEN = "sentinel-file-token-b8e4"
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\"private_key\"\s*:\s*\"-----")


class FailingRuns(FakeKFP):
    """A server whose run creation fails: the error path prints the server's answer, not our request."""

    def route(self, req):
        if req.path.endswith("/runs") and req.method == "POST":
            return 500, {"error": "internal", "code": 13, "message": "database is down"}
        return super().route(req)


def _cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "KF_PIPELINES_"))}
    env.update(SENTINELS)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "tagifai_cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_clean(text: str, where: str):
    for secret in [*SENTINELS.values(), FILE_TOKEN]:
        assert secret not in text, f"{where} holds a secret value"
    assert not PRIVATE_KEY.search(text), f"{where} holds a private key"


def test_commands_send_the_token_and_write_or_print_no_secret(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(FILE_TOKEN)
    outputs = []
    with FakeKFP() as server:
        pkg = str(COMPILED / "kubeflow" / "dataops.yaml")
        for args in (
            ["submit", "dataops", "--host", server.url, "--wait", "--poll-interval", "0.01"],
            ["schedule", "dataops", "--package", pkg, "--host", server.url, "--cron", "0 3 * * *"],
            [
                "backfill",
                "dataops",
                "--package",
                pkg,
                "--host",
                server.url,
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-03",
                "--poll-interval",
                "0.01",
            ],
            [
                "submit",
                "dataops",
                "--package",
                pkg,
                "--host",
                server.url,
                "--token-file",
                str(token_file),
                "--no-upload",
            ],
        ):
            proc = _cli(*args)
            assert proc.returncode == 0, proc.stderr
            outputs.append(proc.stdout + proc.stderr)
        headers = [r.headers.get("authorization") for r in server.requests]
        bodies = b"".join(r.body for r in server.requests).decode("utf-8", "replace")
    assert f"Bearer {SENTINELS['TAGIFAI_KFP_TOKEN']}" in headers and f"Bearer {FILE_TOKEN}" in headers
    _assert_clean(bodies, "a request body (pipeline spec, parameters)")
    for out in outputs:
        _assert_clean(out, "the command's output")


def test_a_failing_request_reports_the_server_error_without_the_token():
    with FailingRuns() as server:
        for debug in ([], ["--debug"]):
            proc = _cli(
                *debug,
                "submit",
                "dataops",
                "--package",
                str(COMPILED / "kubeflow" / "dataops.yaml"),
                "--host",
                server.url,
            )
            assert proc.returncode == 1
            assert "database is down" in proc.stdout + proc.stderr or "500" in proc.stdout + proc.stderr
            _assert_clean(proc.stdout + proc.stderr, "the error output")


def test_compiled_yaml_holds_no_secret_even_when_the_environment_does(tmp_path):
    proc = _cli("compile", "--target", "all", "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    written = list(tmp_path.rglob("*.yaml"))
    assert len(written) == 8  # 4 pipelines x 2 targets
    for path in written:
        _assert_clean(path.read_text(), str(path))
    # secrets are referenced by name only: the names appear, the values cannot
    assert "tagifai-bigquery" in (tmp_path / "kubeflow" / "dataops.yaml").read_text()


def test_committed_yaml_manifests_and_docs_hold_no_secret():
    paths = [
        *COMPILED.rglob("*.yaml"),
        *(ROOT / "manifests").rglob("*"),
        ROOT / "pipelines" / "platform.yaml",
        *(ROOT / "docs").rglob("*.md"),
    ]
    assert any(p.suffix == ".yaml" for p in paths)
    for path in paths:
        if path.is_file():
            _assert_clean(path.read_text(), str(path))


def test_rendered_manifests_hold_no_secret_values():
    import shutil

    import yaml

    if shutil.which("kubectl") is None:
        return
    for overlay in ("tagifai", "overlays/kind-local"):
        out = subprocess.run(
            ["kubectl", "kustomize", str(ROOT / "manifests" / overlay)], check=True, capture_output=True, text=True
        ).stdout
        _assert_clean(out, overlay)
        for doc in yaml.safe_load_all(out):
            assert doc["kind"] != "Secret"
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                for env in container.get("env", []):
                    if any(word in env["name"] for word in ("PASSWORD", "TOKEN", "SECRET", "KEY")):
                        assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
