"""``tagifai models list / approve / rollback / history`` in-process against a real MLflow SQLite store."""

from __future__ import annotations

import json

import pytest

from tagifai import tracking
from tagifai.registry import Registry
from tagifai.tracking import CHAMPION
from tagifai.workflows import evaluate_and_promote
from tagifai_cli.main import main

NAME = "tagifai-cli-gate"


pytestmark = pytest.mark.usefixtures("isolated_mlflow")


@pytest.fixture(scope="module")
def trained(gate_models):
    return gate_models


@pytest.fixture
def gate(tmp_path, trained):
    """v1 champion (auto), v2 pending approval (manual), v3 rejected (shuffled labels)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, "cli-gate", tmp_path / "artifacts")
    outcomes = []
    for key, approval in (("good", "auto"), ("good", "manual"), ("bad", "auto")):
        result = trained[key]
        info = tracking.log_training(
            result.model, result.args, {"test": result.metrics["test"]}, NAME, tracking_uri=uri
        )
        outcomes.append(evaluate_and_promote(info["model_uri"], trained["test"], NAME, uri, approval=approval).outcome)
    assert outcomes == ["promoted", "pending-approval", "rejected"]
    return {"uri": uri, "flags": ["--home", str(tmp_path), "--mlflow-tracking-uri", uri, "--model-name", NAME]}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_list_table_and_json(gate, capsys):
    code, out, _ = run(capsys, "models", "list", *gate["flags"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["version", "aliases", "f1", "decision", "created"]
    assert [line.split()[:2] for line in lines[1:]] == [["3", "challenger"], ["2", "-"], ["1", "champion"]]
    assert "rejected" in lines[1] and "pending-approval" in lines[2] and "promoted" in lines[3]

    code, out, _ = run(capsys, "models", "list", "--json", *gate["flags"])
    rows = json.loads(out)
    assert [(r["version"], r["aliases"], r["decision"]) for r in rows] == [
        (3, ["challenger"], "rejected"),
        (2, [], "pending-approval"),
        (1, ["champion"], "promoted"),
    ]
    assert all(0 < r["f1"] <= 1 for r in rows) and rows[0]["decision_reason"]


def test_models_approve_rollback_and_history(gate, capsys, monkeypatch):
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    code, out, _ = run(capsys, "models", "approve", "2", "--reason", "read the report", *gate["flags"])
    assert code == 0 and f"{NAME}@champion: v1 -> v2 (approve by carol: read the report)" in out
    assert Registry(NAME, gate["uri"]).alias_version(CHAMPION) == 2
    assert tracking.resolve_model_uri(NAME, tracking_uri=gate["uri"]) == f"models:/{NAME}@champion"

    code, out, _ = run(capsys, "models", "rollback", "--reason", "complaints", *gate["flags"])
    assert code == 0 and "v2 -> v1 (rollback by carol: complaints)" in out
    assert Registry(NAME, gate["uri"]).alias_version(CHAMPION) == 1

    code, out, _ = run(capsys, "models", "history", *gate["flags"])
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["when", "(UTC)", "alias", "from"]
    assert len(lines) == 1 + 6  # challenger 1, champion 1, challenger 2, challenger 3, approve, rollback
    assert "approve" in lines[-2] and "carol" in lines[-2] and "read the report" in lines[-2]
    assert "rollback" in lines[-1] and "complaints" in lines[-1]

    code, out, _ = run(capsys, "models", "history", "--alias", "champion", "--json", *gate["flags"])
    moves = json.loads(out)
    assert [(m["from_version"], m["to_version"], m["action"]) for m in moves] == [
        (None, 1, "promote"),
        (1, 2, "approve"),
        (2, 1, "rollback"),
    ]
    assert all(m["moved_at"].endswith("+00:00") for m in moves)


def test_models_approve_refuses_rejected_and_unknown_versions(gate, capsys):
    code, _, err = run(capsys, "models", "approve", "3", *gate["flags"])
    assert code == 1 and "was rejected" in err and "--force" in err
    code, _, err = run(capsys, "models", "approve", "99", *gate["flags"])
    assert code == 1 and "UnknownVersionError" in err and "has no version 99" in err
    assert Registry(NAME, gate["uri"]).alias_version(CHAMPION) == 1
    code, out, _ = run(capsys, "models", "approve", "3", "--force", "--reason", "known noise", *gate["flags"])
    assert code == 0 and "v1 -> v3" in out


def test_models_rollback_without_a_previous_champion(gate, capsys):
    code, _, err = run(capsys, "models", "rollback", *gate["flags"])
    assert code == 1 and "no previous champion" in err


def test_models_approve_and_rollback_rewrite_the_serving_copy(gate, capsys, monkeypatch):
    from tagifai.predict import load_serving_copy

    def served() -> int | None:
        lookup = load_serving_copy(gate["uri"], NAME)
        return lookup.info["version"] if lookup.used else None

    assert served() == 1  # written when the evaluate step promoted v1
    assert run(capsys, "models", "approve", "2", *gate["flags"])[0] == 0
    assert served() == 2
    assert run(capsys, "models", "rollback", *gate["flags"])[0] == 0
    assert served() == 1
    monkeypatch.setenv("TAGIFAI_MODEL_NAME", NAME)
    code, out, err = run(
        capsys, "predict", "--title", "Image segmentation", "--description", "U-Net", *gate["flags"][:4]
    )
    assert code == 0 and json.loads(out)[0]["predicted_tag"] and "warning" not in err
