"""The run report's own logic on small fabricated run folders: the graph and its layout, reading the steps'
pages back, the page itself, the index of runs and the ``report``/``runs`` commands.

The real thing (a real run rendered in Chromium) is tests/e2e/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tagifai.evaluate import report_markdown
from tagifai.validation import ValidationReport
from tagifai.validation.html import fallback_html
from tagifai_cli.main import main
from tagifai_cli.report import build, index, write_run_report
from tagifai_cli.report import dag as dag_mod
from tagifai_cli.report.parse import markdown_sections, markdown_tables, validation_page

RUN = "continual-2026-01-02-10-00-00-000001"


def _task(key: str, name: str, deps: list[str] | None = None) -> dict:
    return {"taskInfo": {"name": name}, "componentRef": {"name": f"comp-{key}"}, "dependentTasks": deps or []}


def _spec(dags: dict[str, dict[str, dict]], root: dict[str, dict], images: dict[str, str]) -> dict:
    """A compiled-spec-shaped dict: nested DAG components, container components with executors."""
    components = {f"comp-{k}": {"dag": {"tasks": tasks}} for k, tasks in dags.items()}
    for key in images:
        components[f"comp-{key}"] = {"executorLabel": f"exec-{key}"}
    executors = {f"exec-{k}": {"container": {"image": image}} for k, image in images.items()}
    return {"root": {"dag": {"tasks": root}}, "components": components, "deploymentSpec": {"executors": executors}}


#: dataops (sync -> validate-table) -> drift -> mlops (extract, train; both start after drift)
SPEC = _spec(
    dags={
        "dataops": {
            "sync": _task("sync", "sync-projects"),
            "validate-table": _task("validate-table", "validate", ["sync"]),
        },
        "mlops": {"extract": _task("extract", "extract"), "train": _task("train", "train")},
    },
    root={
        "dataops": _task("dataops", "dataops"),
        "drift": _task("drift", "drift", ["dataops"]),
        "mlops": _task("mlops", "mlops", ["drift"]),
    },
    images={k: f"localhost:5000/tagifai-{k}:1" for k in ("sync", "validate-table", "drift", "extract", "train")},
)


def test_the_graph_expands_nested_pipelines():
    nodes = {n.id: n for n in dag_mod.graph_from_spec(SPEC)}
    assert set(nodes) == {"dataops/sync", "dataops/validate-table", "drift", "mlops/extract", "mlops/train"}
    assert nodes["dataops/validate-table"].preds == ["dataops/sync"]
    assert nodes["drift"].preds == ["dataops/validate-table"]  # after the nested pipeline's last task
    assert nodes["mlops/extract"].preds == nodes["mlops/train"].preds == ["drift"]  # its first tasks inherit
    assert nodes["dataops/sync"].group == ["dataops"] and nodes["drift"].group == []
    assert nodes["mlops/train"].image == "localhost:5000/tagifai-train:1"
    assert nodes["dataops/sync"].name == "sync-projects"


def test_steps_attach_by_task_key_and_the_rest_are_not_run():
    nodes = dag_mod.attach(
        dag_mod.graph_from_spec(SPEC),
        [
            {"name": "sync-projects", "task": "sync", "status": "succeeded", "seconds": 1.5},
            {"name": "validate", "task": "validate-table", "status": "failed", "seconds": 2.0, "error": "boom"},
        ],
    )
    by_id = {n.id: n for n in nodes}
    assert (by_id["dataops/sync"].status, by_id["dataops/sync"].seconds) == ("succeeded", 1.5)
    assert (by_id["dataops/validate-table"].status, by_id["dataops/validate-table"].error) == ("failed", "boom")
    assert by_id["drift"].status == by_id["mlops/train"].status == "not run"


def test_a_duplicated_key_is_matched_by_display_name():
    spec = _spec(
        dags={"a": {"sync": _task("sync", "sync-a")}, "b": {"sync": _task("sync", "sync-b")}},
        root={"a": _task("a", "a"), "b": _task("b", "b", ["a"])},
        images={"sync": "img"},
    )
    nodes = dag_mod.attach(
        dag_mod.graph_from_spec(spec),
        [{"name": "sync-b", "task": "sync-2", "status": "failed"}, {"name": "sync-a", "task": "sync", "status": "ok"}],
    )
    assert [(n.id, n.task, n.status) for n in nodes] == [("a/sync", "sync", "ok"), ("b/sync", "sync-2", "failed")]


def test_the_layout_puts_each_task_below_its_dependencies_without_overlaps():
    nodes = [
        dag_mod.Node("a", "a", "a"),
        dag_mod.Node("b", "b", "b", preds=["a"]),
        dag_mod.Node("c", "c", "c", preds=["a"]),
        dag_mod.Node("d", "d", "d", preds=["b"]),
        dag_mod.Node("e", "e", "e", preds=["d", "a"]),  # a -> e skips two layers
    ]
    lay = dag_mod.layout(nodes)
    assert dag_mod.layers_of(nodes) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    for node in nodes:
        for p in node.preds:
            assert lay.y[node.id] > lay.y[p]
    for row in lay.layers:
        xs = sorted(lay.x[k] for k in row if "->" not in k)
        assert all(b - a >= dag_mod.NODE_W for a, b in zip(xs, xs[1:], strict=False)), xs
    (points,) = [pts for s, t, pts in lay.edges if (s, t) == ("a", "e")]
    assert len(points) == 4  # source, two placeholders, target
    for x, y in points[1:-1]:  # the long edge passes beside the tasks of the layers it crosses
        for k in ("b", "c", "d"):
            if abs(lay.y[k] - y) < 1:
                assert abs(lay.x[k] - x) >= dag_mod.NODE_W / 2, (k, x)
    assert min(lay.x.values()) > 0 and max(lay.x.values()) < lay.width


def test_the_drawing_shows_every_task_with_status_duration_and_image():
    nodes = dag_mod.attach(
        dag_mod.graph_from_spec(SPEC),
        [{"name": "sync-projects", "task": "sync", "status": "succeeded", "seconds": 3.25}],
    )
    svg = dag_mod.svg(nodes, dag_mod.layout(nodes))
    assert svg.count('<g class="node ') == 5
    assert re.search(r'data-step="sync-projects" data-task="sync" data-status="succeeded">.*?3\.2 s', svg, re.S)
    assert "tagifai-train:1" in svg and 'data-group="mlops"' in svg
    assert svg.count('class="edge"') == 4


# --- the steps' pages, read back -------------------------------------------------------------------------

#: Cut from a real GX 1.24 validation page (one column section; a failed row with its table of unexpected values).
GX_PAGE = """<html><head><title>validation of &#x27;raw.tags&#x27; against suite &#x27;tags&#x27; FAILED</title></head>
<body><div class="tagifai-summary tagifai-fail"><strong>validation of 'raw.tags' against suite 'tags' FAILED:
7/9 expectations met (77.8%)</strong></div><div class="container-fluid"><h5 class="m-0"> Overview </h5>
<i class="fas fa-times text-danger" aria-hidden="true"></i> Failed
<h5 class="m-0"> id </h5>
<table class="table"><thead><tr><th data-sortable="True"> Status </th><th> Expectation </th><th> Observed Value </th>
</tr></thead><tbody>
<tr><td><div><span><i class="fas fa-check-circle text-success"></i></span></div></td><td><div><span> values must never
be null. </span></div></td><td><div>100% not null</div></td></tr>
<tr><td><div><span><i class="fas fa-times text-danger"></i></span></div></td><td><div><span> values must be unique.
</span><strong class="text-danger"><br><br>2 unexpected values found.</strong><table class="table-bordered"><thead>
<tr><th> Unexpected Value </th><th> Count </th></tr></thead><tbody><tr><td><div>27</div></td><td><div>2</div></td></tr>
</tbody></table></div></td><td><div>&#8776;0.26% unexpected</div></td></tr>
</tbody></table></div></body></html>"""


def test_a_gx_page_gives_its_expectations_failed_first():
    line, found = validation_page(GX_PAGE)
    assert line.startswith("validation of 'raw.tags' against suite 'tags' FAILED: 7/9")
    assert [(e.section, e.passed) for e in found] == [("id", False), ("id", True)]
    assert found[0].text.startswith("values must be unique. 2 unexpected values found.")
    assert "27, 2" in found[0].text  # the unexpected values' table, kept in the cell
    assert found[0].observed == "\u22480.26% unexpected" and found[1].observed == "100% not null"


def test_the_plain_validation_page_gives_its_failures():
    report = ValidationReport(
        suite="projects",
        data_name="raw.projects",
        success=False,
        evaluated=3,
        successful=2,
        unsuccessful=1,
        success_percent=66.7,
        failures=[
            {
                "expectation": "expect_column_values_to_not_be_null",
                "columns": ["title"],
                "kwargs": {"column": "title"},
                "unexpected_count": 4,
                "sample_unexpected": [None],
            }
        ],
    )
    line, found = validation_page(fallback_html(report))
    assert line == report.summary()
    assert [(e.section, e.text, e.passed) for e in found] == [("title", "expect_column_values_to_not_be_null", False)]
    assert found[0].observed == "4 unexpected; e.g. null"


@pytest.mark.parametrize("engine", ["gx", "sql"])
def test_a_real_validation_page_gives_each_expectation_with_its_status(engine):
    """The pages the validate step writes today (GX's, its icons made text marks; or the SQL engine's):
    every expectation is read back, passed or failed as the validation said (the report's parser read
    only GX's icon-font tags before, and so showed every expectation of a text-marked page as failed)."""
    from tagifai.config import PACKAGE_ROOT
    from tagifai.validation import validate_dataframe

    tags = pd.read_csv(PACKAGE_ROOT / "data" / "madewithml" / "tags.csv")
    tags.loc[1, "id"] = tags.loc[0, "id"]
    tags.loc[2, "tag"] = None
    report = validate_dataframe(tags, "tags", "raw.tags", engine=engine)
    line, found = validation_page(report.html)
    assert line == report.summary()
    assert len(found) == report.evaluated == 9
    assert [e.passed for e in found] == [False] * report.unsuccessful + [True] * report.successful
    assert {e.section for e in found if not e.passed} == {"id", "tag"}


def test_markdown_tables_and_sections_of_an_evaluation_report():
    text = report_markdown(
        {"overall": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "num_samples": 10}},
        behavioral=[
            {"passed": True, "kind": "invariance", "input": "a | b", "expected": "x", "predicted": "x"},
            {"passed": False, "kind": "directional", "input": "c", "expected": "y", "predicted": "z"},
        ],
    )
    text += "\n\n## Decision: rejected\n\na behavioral test failed.\n\n## Champion\n\n`tagifai@champion` unchanged\n"
    tables = {t.heading: t for t in markdown_tables(text)}
    assert tables["Overall (weighted)"].records() == [
        {"precision": "0.900", "recall": "0.800", "f1": "0.850", "samples": "10"}
    ]
    behavioural = tables["Behavioral tests: 1/2 passed"].records()
    assert [(r["result"], r["input"]) for r in behavioural] == [("pass", "a | b"), ("FAIL", "c")]
    sections = dict(markdown_sections(text))
    assert sections["Decision: rejected"] == "a behavioral test failed."
    assert sections["Champion"] == "`tagifai@champion` unchanged"


# --- a fabricated run folder ------------------------------------------------------------------------------


def _outputs(folder: Path, artifacts: dict[str, dict], parameters: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "artifacts": {
            name: {"artifacts": [{"name": name, "uri": str(folder / name), "metadata": meta}]}
            for name, meta in artifacts.items()
        }
    }
    if parameters:
        payload["parameterValues"] = parameters
    (folder / "executor_output.json").write_text(json.dumps(payload))


def _optuna_storage(path: Path, trials: int) -> str:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="tagifai-test", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("C", 0.1, 1.0) - t.suggest_float("alpha", 0, 0.1), n_trials=trials)
    return storage


def _steps(*done: tuple[str, str, str]) -> list[dict]:
    return [
        {"name": name, "task": task, "status": status, "seconds": 1.0 + i}
        for i, (name, task, status) in enumerate(done)
    ]


@pytest.fixture
def good_run(tmp_path) -> tuple[Path, dict, str]:
    """A finished run: sync, validate, transform, extract, optimize, train, evaluate, drift; an Optuna study."""
    home = tmp_path / "home"
    run = home / "runs" / RUN
    _outputs(run / "sync", {"dataset": {"table": "projects", "rows_read": 5, "rows_before": 0, "rows_after": 5}})
    pd.DataFrame({"id": range(5)}).to_parquet(run / "sync" / "dataset")
    _outputs(run / "validate-table", {"report": {}, "metrics": {"evaluated": 2, "successful": 2, "unsuccessful": 0}})
    (run / "validate-table" / "report").write_text(
        GX_PAGE.replace('fa-times text-danger"></i></span>', 'fa-check"></i></span>')
    )
    _outputs(
        run / "transform", {"report": {}, "labeled_projects": {"table": "labeled_projects", "rows": 5}, "metrics": {}}
    )
    (run / "transform" / "report").write_text(
        "## dbt build\n\n**dbt build succeeded: 1 models, 2 tests**\n\n### Nodes\n\n"
        "| node | type | status | time (s) | message |\n|---|---|---|---:|---|\n"
        "| `stg_projects` | model | success | 0.16 |  |\n| `not_null_x` | test | fail | 0.05 | 1 row |\n"
        "| `unique_x` | test | pass | 0.05 |  |\n"
    )
    df = pd.DataFrame({"title": ["a b", "c"] * 3, "description": ["x" * 10, "y" * 30] * 3, "tag": ["mlops", "cv"] * 3})
    _outputs(run / "extract", {"dataset": {"table": "labeled_projects", "rows": 6}})
    df.to_parquet(run / "extract" / "dataset")
    _outputs(
        run / "optimize",
        {
            "best_args": {"args": {"C": 0.5}, "study_name": "tagifai-test", "chosen": {"reason": "the best"}},
            "metrics": {},
        },
    )
    (run / "optimize" / "best_args").write_text('{"C": 0.5}')
    _outputs(
        run / "train",
        {
            "metrics": {"precision": 0.91, "recall": 0.92, "f1": 0.9123, "num_samples": 6},
            "slice_metrics": {"class/mlops/f1": 0.8, "class/mlops/num_samples": 3, "slice/short/f1": 0.5},
            "confusion_matrix": {
                "confusionMatrix": {
                    "annotationSpecs": [{"displayName": "mlops"}, {"displayName": "cv"}],
                    "rows": [{"row": [3, 0]}, {"row": [1, 2]}],
                }
            },
            "model": {"model_uri": "models:/tagifai/7", "threshold": 0.3},
        },
        {"model_uri": "models:/tagifai/7"},
    )
    (run / "train" / "model").mkdir()
    (run / "train" / "model" / "MLmodel").write_text("flavors: {}\n")
    _outputs(run / "evaluate", {"report": {"outcome": "rejected", "reason": "a behavioral test failed"}, "metrics": {}})
    (run / "evaluate" / "report").write_text(
        report_markdown(
            {"overall": {"f1": 0.9}},
            behavioral=[
                {"passed": True, "kind": "invariance", "input": "ok text", "expected": "x", "predicted": "x"},
                {"passed": False, "kind": "directional", "input": "bad text", "expected": "y", "predicted": "z"},
            ],
        )
    )
    _outputs(run / "drift", {"result": {"drifted": True, "reasons": ["tag share moved"]}, "report": {}, "metrics": {}})
    (run / "drift" / "report").write_text("<!DOCTYPE html><html><body>drift</body></html>")
    steps = _steps(
        ("sync-projects", "sync", "succeeded"),
        ("validate-projects", "validate-table", "succeeded"),
        ("transform", "transform", "succeeded"),
        ("drift", "drift", "succeeded"),
        ("extract", "extract", "succeeded"),
        ("optimize", "optimize", "succeeded"),
        ("train", "train", "succeeded"),
        ("evaluate", "evaluate", "succeeded"),
    )
    summary = {
        "pipeline": "continual",
        "status": "succeeded",
        "seconds": 42.0,
        "run_dir": str(run),
        "steps": steps,
        "rows": {"raw.projects": 5, "extracted": 6},
        "metrics": {"precision": 0.91, "recall": 0.92, "f1": 0.9123},
        "model_uri": "models:/tagifai/7",
        "evaluation": {"outcome": 0},
        "drift": True,
    }
    return run, summary, _optuna_storage(tmp_path / "optuna.db", 3)


def test_the_report_of_a_finished_run(good_run):
    run, summary, storage = good_run
    path = build.write(run, summary, optuna_storage=storage)
    page = path.read_text()
    assert path == run / "report.html"
    # the graph follows the steps when there is no pipeline spec: every step, in order, with its status
    steps = re.findall(r'data-step="([^"]+)" data-task="[^"]+" data-status="succeeded"', page)
    assert steps == [s["name"] for s in summary["steps"]]
    # pictures: data profile, history, importances (3 trials), per class, confusion matrix; all inline
    images = re.findall(r'<img src="([^"]*)"', page)
    assert len(images) == 5 and all(src.startswith("data:image/png;base64,") for src in images)
    # the failed dbt test and the failed behavioural test come first; the decision and drift are shown
    assert page.index("not_null_x") < page.index("unique_x")
    assert page.index("bad text") < page.index("ok text")
    assert 'data-decision="rejected"' in page and "a behavioral test failed" in page
    assert 'data-drifted="yes"' in page and "tag share moved" in page
    assert 'data-card="f1"' in page and "0.9123" in page and "v7" in page
    # named copies: hard links of the artifacts with real extensions, linked relatively
    assert (run / "report" / "evaluate" / "report.md").read_text() == (run / "evaluate" / "report").read_text()
    assert (run / "report" / "evaluate" / "report.md").stat().st_ino == (run / "evaluate" / "report").stat().st_ino
    assert (run / "report" / "validate-projects" / "report.html").exists()
    assert (run / "report" / "sync-projects" / "dataset.parquet").exists()
    assert (run / "report" / "optimize" / "best_args.json").exists()
    links = set(re.findall(r'href="([^"#][^"]*)"', page))
    assert "report/evaluate/report.md" in links and "train/model/" in links
    assert all((run / link).exists() for link in links if link != "../index.html")
    # nothing outside the page: no http(s) source or link, and a policy that forbids loading anything
    assert not re.search(r'(src|href)="https?:', page)
    assert "default-src 'none'; img-src data:" in page
    saved = json.loads((run / "report" / "summary.json").read_text())
    assert saved["report"] == str(path) and saved["steps"] == summary["steps"]


def test_the_report_shows_the_optimize_steps_own_pictures_without_drawing_them_again(good_run, tmp_path):
    """optimize's ``plots`` page and its trial counts (metadata ``trials``) are what the report shows: the study is
    not opened (its storage here is gone), and the pictures are the step's, byte for byte."""
    from tagifai import figures

    run, summary, storage = good_run
    drawn = figures.optimization_figures(storage, "tagifai-test")
    assert drawn[1] == {"complete": 3} and len(drawn[0]) == 2
    executor_output = json.loads((run / "optimize" / "executor_output.json").read_text())
    executor_output["artifacts"]["plots"] = {
        "artifacts": [{"name": "plots", "uri": str(run / "optimize" / "plots"), "metadata": {"trials": drawn[1]}}]
    }
    (run / "optimize" / "executor_output.json").write_text(json.dumps(executor_output))
    (run / "optimize" / "plots").write_text(figures.optimization_page(storage, "tagifai-test", {}, drawn))
    gone = tmp_path / "gone.db"
    page = build.write(run, summary, optuna_storage=f"sqlite:///{gone}").read_text()
    assert "is not there" not in page and not gone.exists()
    for picture in drawn[0]:
        assert picture.uri.startswith("data:image/png;base64,") and picture.uri in page
    assert "3 complete" in page


def test_importances_need_two_completed_trials(good_run, tmp_path):
    run, summary, _ = good_run
    page = build.write(run, summary, optuna_storage=_optuna_storage(tmp_path / "one.db", 1)).read_text()
    assert "not computed: 1 completed trial(s); parameter importances need at least 2" in page
    assert len(re.findall(r"<img ", page)) == 4  # the history is still drawn


def test_a_missing_optuna_storage_is_said_and_not_created(good_run, tmp_path):
    run, summary, _ = good_run
    missing = tmp_path / "nowhere.db"
    page = build.write(run, summary, optuna_storage=f"sqlite:///{missing}").read_text()
    assert f"the Optuna storage sqlite:///{missing} is not there" in page
    assert not missing.exists()


def test_the_report_of_a_failed_run_shows_where_it_stopped(tmp_path):
    run = tmp_path / "runs" / RUN
    _outputs(run / "sync", {"dataset": {"table": "tags", "rows_after": 3}})
    (run / "validate-table").mkdir()  # kfp writes no executor_output.json for a failed task; the page is there
    (run / "validate-table" / "report").write_text(GX_PAGE)
    summary = {
        "pipeline": "dataops",
        "status": "failed",
        "run_dir": str(run),
        "steps": [
            {"name": "sync-tags", "task": "sync", "status": "succeeded", "seconds": 1.0},
            {
                "name": "validate",
                "task": "validate-table",
                "status": "failed",
                "seconds": 2.0,
                "error": "DataValidationError",
            },
        ],
    }
    spec = _spec(
        dags={},
        root={
            "sync": _task("sync", "sync-tags"),
            "validate-table": _task("validate-table", "validate", ["sync"]),
            "transform": _task("transform", "transform", ["validate-table"]),
        },
        images={"sync": "s", "validate-table": "v", "transform": "t"},
    )
    page = build.write(run, summary, spec=spec).read_text()
    assert re.search(r'data-step="transform" data-task="transform" data-status="not run"', page)
    assert re.search(r'data-step="validate" data-task="validate-table" data-status="failed"', page)
    assert 'data-run-status="failed"' in page and "failed step validate: DataValidationError" in page
    block = re.search(r'<div class="validation" data-task="validate-table" data-failed="1">(.*?)</details>', page, re.S)
    assert block and block.group(1).index("values must be unique") < block.group(1).index("values must never be null")
    assert "1/2 expectations met, 1 failed (read from its page)" in page
    assert json.loads((run / "report" / "dag.json").read_text())[2]["preds"] == ["validate-table"]
    # written again without the spec: the saved graph is used, not the order the steps ran in
    page = build.write(run, summary).read_text()
    assert 'data-step="transform"' in page


def test_writing_a_report_never_fails_the_run(tmp_path, monkeypatch, capsys):
    assert write_run_report({"run_dir": None}, tmp_path) is None
    run = tmp_path / "runs" / RUN
    run.mkdir(parents=True)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(build, "write", broken)
    assert write_run_report({"run_dir": str(run), "steps": []}, tmp_path) is None
    assert "warning: no run report: OSError: disk full" in capsys.readouterr().err


def test_the_index_lists_runs_with_f1_from_run_to_run(tmp_path):
    home = tmp_path
    older = home / "runs" / "continual-2026-01-01-09-00-00-000001"
    newer = home / "runs" / RUN
    for run_dir, f1, version in ((older, 0.80, 1), (newer, 0.81, 2)):
        (run_dir / "report").mkdir(parents=True)
        summary = {"pipeline": "continual", "status": "succeeded", "seconds": 60.0, "metrics": {"f1": f1}}
        summary.update(model_uri=f"models:/tagifai/{version}", rows={"raw.projects": 700 + version})
        (run_dir / "report" / "summary.json").write_text(json.dumps(summary))
    (newer / "report.html").write_text("<html></html>")
    runs = index.summaries(home)
    assert [r["run"] for r in runs] == [older.name, newer.name]
    text = index.write_index(home, runs).read_text()
    rows = re.findall(r'<tr data-run="([^"]+)">(.*?)</tr>', text, re.S)
    assert [r[0] for r in rows] == [older.name, newer.name]
    assert "0.8100 (+0.0100)" in rows[1][1] and "v2" in rows[1][1] and "702" in rows[1][1]
    assert f'<a href="{RUN}/report.html">' in rows[1][1] and "<a " not in rows[0][1]
    assert text.count("<polyline") == 2  # f1 and raw.projects; no extracted counts to draw


def test_runs_and_report_commands(tmp_path, capsys):
    home = tmp_path / "home"
    old = home / "runs" / "mlops-2026-01-01-09-00-00-000001"  # from before the reports: derived from its folder
    _outputs(old / "train", {"metrics": {"f1": 0.75}}, {"model_uri": "models:/tagifai/3"})
    assert main(["runs", "--home", str(home)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"index: {home / 'runs' / 'index.html'}"
    assert re.match(rf"{old.name}\s+finished\s+\S+\s+0\.7500\s+v3", out[1]), out[1]

    assert main(["report", "--home", str(home)]) == 0  # the newest run when there is no last_run.json
    assert capsys.readouterr().out.strip() == str(old / "report.html")
    page = (old / "report.html").read_text()
    assert 'data-step="train" data-task="train" data-status="succeeded"' in page
    assert 'data-step="evaluate" data-task="evaluate" data-status="not run"' in page  # the mlops graph, built now

    assert main(["report", "nope", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tagifai report: error: RunNotFound: no run 'nope' in") and old.name in err
