"""``tagifai ui`` and ``tagifai docs``: a real ``tagifai ui`` process on a small state folder (an MLflow sqlite store
with one run, an Optuna sqlite study with one trial) on free ports, stopped by SIGINT; dbt's static docs page of
a warehouse dbt built; the run report's link to it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from tagifai.config import PACKAGE_ROOT
from tagifai_cli.main import main

EXPERIMENT = "tagifai-ui-test"
STUDY = "tagifai-ui-study"
DATA = PACKAGE_ROOT / "data" / "madewithml"

pytestmark = pytest.mark.timeout(300)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper does not run)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the environment (mlflow needs it)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rfind(")") + 2] not in "ZX"
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _descendants(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _env() -> dict[str, str]:
    """This environment without settings that would point the command elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TAGIFAI_") and k != "MLFLOW_TRACKING_URI"}


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> dict:
    """A state folder as `make run` leaves it, in small: mlflow.db (one run with an artifact), optuna.db."""
    import optuna
    from mlflow import MlflowClient

    home = tmp_path_factory.mktemp("ui") / "home"
    home.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.create_experiment(EXPERIMENT, (home / "mlartifacts" / EXPERIMENT).as_uri())
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "C", 0.5)
    client.log_metric(run.info.run_id, "f1", 0.9)
    client.log_text(run.info.run_id, "hello from the test", "notes.txt")
    client.set_terminated(run.info.run_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}", direction="maximize")
    study.optimize(lambda t: t.suggest_float("C", 0.1, 1.0), n_trials=1)
    return {"home": home, "run_id": run.info.run_id}


def test_ui_serves_mlflow_and_optuna_and_stops_cleanly_on_sigint(state):
    mlflow_port, optuna_port = _free_ports(2)
    cmd = [sys.executable, "-m", "tagifai_cli.main", "ui", "--home", str(state["home"])]
    cmd += ["--mlflow-port", str(mlflow_port), "--optuna-port", str(optuna_port)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    output: list[str] = []
    children: list[int] = []
    try:
        while not all(any(line.startswith(f"{n} ready: ") for line in output) for n in ("MLflow", "Optuna")):
            assert proc.poll() is None, "tagifai ui exited:\n" + "".join(output) + "".join(list(lines.queue))
            assert time.monotonic() - started < 150, "no ready lines:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        print(f"\ntagifai ui ready after {time.monotonic() - started:.1f} s")
        text = "".join(output)
        assert f"MLflow ready: http://127.0.0.1:{mlflow_port}" in text
        assert f"Optuna ready: http://127.0.0.1:{optuna_port}" in text
        mlflow_url, optuna_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{optuna_port}"

        assert _get(mlflow_url)[0] == 200
        assert _get(optuna_url)[0] == 200
        status, body = _get(f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=100")
        assert status == 200 and EXPERIMENT in [e["name"] for e in json.loads(body)["experiments"]]
        # the artifacts are served: the run's file, read through the UI's own endpoint
        status, body = _get(f"{mlflow_url}/get-artifact?path=notes.txt&run_uuid={state['run_id']}")
        assert status == 200 and body == b"hello from the test"
        status, body = _get(f"{optuna_url}/api/studies")
        studies = json.loads(body)
        assert status == 200 and STUDY in [s["study_name"] for s in studies.get("study_summaries", [])]

        children = _descendants(proc.pid)
        assert len(children) >= 2  # the two servers (and what they forked)
        proc.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        assert proc.wait(timeout=20) == 0
        print(f"stopped after {time.monotonic() - stopping:.1f} s")
        deadline = time.monotonic() + 5  # the leaders are reaped; what they forked, by init
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]
        for port in (mlflow_port, optuna_port):
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    finally:  # a failed test leaves nothing running either
        if proc.poll() is None:
            children += _descendants(proc.pid)
            proc.kill()
            proc.wait()
        for pid in set(children):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_ui_says_to_run_first_when_there_is_no_store(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["ui", "--home", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "no MLflow store at" in err and "run `make run`" in err
    assert main(["ui", "--home", str(tmp_path / "empty"), "--no-mlflow"]) == 1
    assert "no Optuna storage at" in capsys.readouterr().err


def test_ui_refuses_a_taken_port_before_starting_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("mlflow.db", "optuna.db"):
        (tmp_path / name).touch()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--home", str(tmp_path), "--mlflow-port", str(port), "--no-optuna"]) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is taken" in err and "--mlflow-port" in err
    assert not (tmp_path / "logs").exists()  # no server was started


# --- dbt docs ------------------------------------------------------------------------------------------------


def _load_raw(path: Path) -> None:
    """raw.projects and raw.tags from the vendored CSVs, shaped like dlt's tables (see tests/unit/test_transform.py)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute(
            f"""CREATE TABLE raw.projects AS SELECT CAST(id AS BIGINT) AS id,
                CAST(created_on AS TIMESTAMP) AS created_on, CAST(title AS VARCHAR) AS title,
                CAST(description AS VARCHAR) AS description, '1' AS _dlt_load_id, md5(CAST(id AS VARCHAR)) AS _dlt_id
                FROM read_csv('{DATA / "projects.csv"}', header = true)"""
        )
        con.execute(
            f"""CREATE TABLE raw.tags AS SELECT CAST(id AS BIGINT) AS id, CAST(tag AS VARCHAR) AS tag,
                '1' AS _dlt_load_id, md5(CAST(id AS VARCHAR)) AS _dlt_id
                FROM read_csv('{DATA / "tags.csv"}', header = true)"""
        )


def test_generate_docs_writes_one_static_page_of_the_project(tmp_path):
    from tagifai.transform import TransformError, generate_docs, run_dbt

    home = tmp_path / "home"
    warehouse = home / "warehouse.duckdb"
    home.mkdir()
    with pytest.raises(TransformError, match="does not exist"):
        generate_docs(f"duckdb:///{warehouse}", PACKAGE_ROOT / "dbt_transforms", state_dir=home / "dbt")
    _load_raw(warehouse)
    build = run_dbt("build", f"duckdb:///{warehouse}", PACKAGE_ROOT / "dbt_transforms", state_dir=home / "dbt")
    assert build.success, build.to_markdown()
    page = generate_docs(
        f"duckdb:///{warehouse}",
        PACKAGE_ROOT / "dbt_transforms",
        state_dir=home / "dbt",
        output=home / "dbt-docs" / "index.html",
    )
    assert page == home / "dbt-docs" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "labeled_projects" in html and "stg_projects" in html
    # one page: the manifest and the catalog (the built table's columns) are inside it, no other file is needed
    assert '"model.tagifai.labeled_projects"' in html
    assert "schemas.getdbt.com/dbt/manifest/" in html and "schemas.getdbt.com/dbt/catalog/" in html
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)
    assert '"send_anonymous_usage_stats": false' in html  # dbt's page loads its tracker only when true


def _run_with_transform(home: Path) -> tuple[Path, dict]:
    run = home / "runs" / "continual-2026-01-02-10-00-00-000001"
    (run / "transform").mkdir(parents=True)
    (run / "transform" / "report").write_text("## dbt build\n\n**dbt build succeeded: 1 model**\n")
    payload = {"artifacts": {"report": {"artifacts": [{"name": "report", "uri": str(run / "transform" / "report")}]}}}
    (run / "transform" / "executor_output.json").write_text(json.dumps(payload))
    steps = [{"name": "transform", "task": "transform", "status": "succeeded", "seconds": 1.0}]
    return run, {"pipeline": "continual", "status": "succeeded", "run_dir": str(run), "steps": steps}


def test_the_report_links_the_dbt_docs_when_they_exist(tmp_path):
    from tagifai_cli.report import build

    home = tmp_path / "home"
    run, summary = _run_with_transform(home)
    page = build.write(run, summary).read_text()
    dbt = page[page.index('<section id="dbt">') :]
    dbt = dbt[: dbt.index("</section>")]
    assert "dbt docs" not in re.findall(r"<a [^>]*>([^<]*)</a>", dbt)
    assert "<code>tagifai docs</code> builds dbt's documentation site" in dbt

    (home / "dbt-docs").mkdir()
    (home / "dbt-docs" / "index.html").write_text("<html>dbt</html>")
    page = build.write(run, summary).read_text()
    dbt = page[page.index('<section id="dbt">') :]
    dbt = dbt[: dbt.index("</section>")]
    assert '<a href="../../dbt-docs/index.html">dbt docs</a>' in dbt
    assert (run / "../../dbt-docs/index.html").resolve() == (home / "dbt-docs" / "index.html").resolve()
    assert "builds dbt's documentation site" not in dbt
