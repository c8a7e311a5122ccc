"""The command line's own logic: progress parsing, summaries, one-line errors."""

import io
import json

from tagifai_cli.local_run import StepEvent, _ProgressTee, summarise
from tagifai_cli.main import main


def test_progress_tee_tracks_steps_and_failure_details():
    log, term = io.StringIO(), io.StringIO()
    tee = _ProgressTee(log, term, names={"validate-table": "validate-projects"})
    tee.write("00:00:01.000 - INFO - Executing task \x1b[96m'sync'\x1b[0m\nnoise\n")
    tee.write("00:00:02.000 - INFO - Task \x1b[96m'sync'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n")
    tee.write("00:00:03.000 - INFO - Executing task 'validate-table'\n")
    tee.write("    tagifai.validation.DataValidationError: Data validation failed for 'raw.projects'\n")
    tee.write("      - expect_column_values_to_not_be_null on column 'title': 1 unexpected\n")
    tee.write("Task 'validate-table' finished with status FAILURE\n")
    assert [(s.name, s.label, s.status) for s in tee.steps] == [
        ("sync", "sync", "succeeded"),
        ("validate-table", "validate-projects", "failed"),
    ]
    assert tee.steps[1].error.startswith("DataValidationError: Data validation failed for 'raw.projects'")
    assert "not_be_null on column 'title'" in tee.steps[1].error
    assert "noise" in log.getvalue() and "noise" not in term.getvalue()
    assert "FAILED validate-projects" in term.getvalue()


def test_summary_reads_artifact_metadata(tmp_path):
    run = tmp_path / "run"
    for task, payload in {
        "sync": {"artifacts": {"dataset": {"artifacts": [{"metadata": {"table": "projects", "rows_after": 764}}]}}},
        "train": {
            "artifacts": {
                "metrics": {
                    "artifacts": [{"metadata": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "num_samples": 10}}]
                }
            },
            "parameterValues": {"model_uri": "models:/tagifai/3"},
        },
    }.items():
        (run / task).mkdir(parents=True)
        (run / task / "executor_output.json").write_text(json.dumps(payload))
    summary = summarise(
        "continual", "succeeded", [StepEvent("sync", label="sync-projects", status="succeeded", seconds=1.0)], run, 2.0
    )
    assert summary["rows"] == {"raw.projects": 764}
    assert summary["metrics"] == {"precision": 0.9, "recall": 0.8, "f1": 0.85}
    assert summary["model_uri"] == "models:/tagifai/3"
    assert summary["steps"] == [{"name": "sync-projects", "task": "sync", "status": "succeeded", "seconds": 1.0}]


def test_errors_are_one_clear_line(tmp_path, capsys):
    code = main(["evaluate", "--input", str(tmp_path / "missing.csv"), "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"tagifai evaluate: error: CLIError: {tmp_path / 'missing.csv'}: no such file"


def test_predict_without_a_model_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TAGIFAI_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["predict", "--title", "x", "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "no registered model 'tagifai'" in err


def test_run_rejects_an_unknown_model_family_before_running(tmp_path, capsys):
    code = main(["run", "mlops", "--model-families", "logreg,xgboost", "--home", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "--model-families: unknown model family 'xgboost'" in err
    assert not (tmp_path / "last_run.json").exists()
