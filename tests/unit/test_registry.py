"""The human gate, promotion, rollback and the alias log against a real MLflow SQLite store (no mocks).

Models are small (TF-IDF only, ``embedding="none"``): these tests are about the registry, not quality.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tagifai import tracking
from tagifai.registry import CHALLENGER, PENDING, PROMOTED, REJECTED, Registry, RegistryError, UnknownVersionError
from tagifai.tracking import CHAMPION
from tagifai.workflows import decide, evaluate_and_promote

NAME = "tagifai-gate"


pytestmark = pytest.mark.usefixtures("isolated_mlflow")


@pytest.fixture(scope="module")
def trained(gate_models):
    return gate_models


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, "gate-test", tmp_path / "artifacts")
    return uri


def register(uri: str, result) -> str:
    info = tracking.log_training(result.model, result.args, {"test": result.metrics["test"]}, NAME, tracking_uri=uri)
    return info["model_uri"]


def test_decide_rules():
    passed = [{"name": "a", "passed": True}]
    failed = [{"name": "a", "passed": True}, {"name": "b", "passed": False}]
    assert decide(0.8, passed, None)[0] == PROMOTED
    assert decide(0.8, passed, None, approval="manual")[0] == PENDING
    assert decide(0.8, passed, 0.8, champion_version=1)[0] == PROMOTED  # a tie is not worse
    outcome, reason = decide(0.79, passed, 0.8, champion_version=1)
    assert outcome == REJECTED and "not as good as the champion" in reason and "v1" in reason
    # the margin is what a challenger must gain: 0.81 beats 0.80 by less than 0.02
    outcome, reason = decide(0.81, passed, 0.8, margin=0.02, champion_version=1)
    assert outcome == REJECTED and "not 0.02 better than" in reason
    assert decide(0.83, passed, 0.8, margin=0.02, champion_version=1)[0] == PROMOTED
    assert decide(0.83, passed, 0.8, approval="manual", margin=0.02, champion_version=1)[0] == PENDING
    with pytest.raises(ValueError, match="margin"):
        decide(0.8, passed, 0.7, margin=-0.1, champion_version=1)
    outcome, reason = decide(0.99, failed, 0.8, champion_version=1)
    assert outcome == REJECTED and "1 behavioral test(s) failed: b" in reason
    with pytest.raises(ValueError, match="approval"):
        decide(0.8, passed, None, approval="sometimes")


def test_auto_promotes_a_better_challenger(store, trained):
    registry = Registry(NAME, store, actor_name="alice")
    bad_uri = register(store, trained["bad"])
    registry.move_alias(CHAMPION, 1, "seeded by the test", action="manual")
    good_uri = register(store, trained["good"])

    out = evaluate_and_promote(good_uri, trained["test"], NAME, store, approval="auto")

    assert bad_uri.endswith("/1") and good_uri.endswith("/2")
    assert out.outcome == PROMOTED and out.promoted and out.outcome_code == 2
    assert out.champion_before["version"] == 1 and out.metrics["overall"]["f1"] > out.champion_before["f1"]
    assert registry.alias_version(CHAMPION) == 2 and registry.alias_version(CHALLENGER) == 2
    assert registry.decision(2) == PROMOTED
    assert "## Decision: promoted" in out.report and f"`{NAME}@champion` now points at version 2" in out.report
    assert tracking.resolve_model_uri(NAME, tracking_uri=store) == f"models:/{NAME}@champion"
    last = registry.alias_history(CHAMPION)[-1]
    assert (last.from_version, last.to_version, last.action) == (1, 2, "promote")


def test_no_champion_yet_auto_promotes(store, trained):
    uri = register(store, trained["good"])
    out = evaluate_and_promote(uri, trained["test"], NAME, store)
    assert out.outcome == PROMOTED and "no champion yet" in out.reason
    assert Registry(NAME, store).alias_version(CHAMPION) == 1


def test_manual_leaves_the_challenger_pending_then_approve_and_rollback(store, trained):
    first = register(store, trained["good"])
    assert evaluate_and_promote(first, trained["test"], NAME, store).outcome == PROMOTED
    second = register(store, trained["good"])

    out = evaluate_and_promote(second, trained["test"], NAME, store, approval="manual")

    registry = Registry(NAME, store, actor_name="bob")
    assert out.outcome == PENDING and not out.promoted and out.outcome_code == 1
    assert "## Decision: pending-approval" in out.report and "tagifai models approve 2" in out.report
    assert registry.alias_version(CHAMPION) == 1 and registry.alias_version(CHALLENGER) == 2
    assert registry.decision(2) == PENDING
    before = registry.alias_history()

    move = registry.approve(2, "reviewed the report")

    assert registry.alias_version(CHAMPION) == 2 and registry.decision(2) == PROMOTED
    assert (move.alias, move.from_version, move.to_version, move.actor, move.reason, move.action) == (
        CHAMPION,
        1,
        2,
        "bob",
        "reviewed the report",
        "approve",
    )
    assert datetime.fromisoformat(move.moved_at).utcoffset().total_seconds() == 0
    tags = registry.version(2).tags
    assert tags["tagifai.champion.by"] == "bob" and tags["tagifai.champion.from"] == "1"
    assert tags["tagifai.champion.reason"] == "reviewed the report" and tags["tagifai.champion.at"] == move.moved_at
    after_approve = registry.alias_history()
    assert after_approve[: len(before)] == before and after_approve[-1] == move  # append-only

    back = registry.rollback("errors in production")

    assert (back.from_version, back.to_version, back.action) == (2, 1, "rollback")
    assert registry.alias_version(CHAMPION) == 1 and registry.decision(2) == "rolled-back"
    history = registry.alias_history()
    assert history[: len(after_approve)] == after_approve and history[-1] == back
    assert [m.moved_at for m in history] == sorted(m.moved_at for m in history)
    assert [(m.alias, m.to_version) for m in history] == [
        (CHALLENGER, 1),
        (CHAMPION, 1),
        (CHALLENGER, 2),
        (CHAMPION, 2),
        (CHAMPION, 1),
    ]
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("again")


def test_a_worse_challenger_is_rejected_and_the_run_does_not_fail(store, trained):
    good = register(store, trained["good"])
    evaluate_and_promote(good, trained["test"], NAME, store)
    bad = register(store, trained["bad"])

    out = evaluate_and_promote(bad, trained["test"], NAME, store, approval="auto")  # no exception

    registry = Registry(NAME, store)
    assert out.outcome == REJECTED and not out.promoted and out.outcome_code == 0
    assert "behavioral test(s) failed" in out.reason or "below the champion" in out.reason
    assert "## Decision: rejected" in out.report and out.reason in out.report
    assert registry.alias_version(CHAMPION) == 1 and registry.alias_version(CHALLENGER) == 2
    assert registry.decision(2) == REJECTED
    assert registry.version(2).tags["tagifai.decision_reason"] == out.reason
    with pytest.raises(RegistryError, match="was rejected"):
        registry.approve(2, "I insist")
    assert registry.alias_version(CHAMPION) == 1
    registry.approve(2, "I insist", force=True)
    assert registry.alias_version(CHAMPION) == 2


def test_approve_of_an_unknown_version_is_a_clear_error(store, trained):
    register(store, trained["good"])
    registry = Registry(NAME, store)
    with pytest.raises(UnknownVersionError, match=f"{NAME} has no version 99 \\(versions: 1\\)"):
        registry.approve(99, "typo")
    with pytest.raises(UnknownVersionError, match="not a version number"):
        registry.approve("latest")
    with pytest.raises(RegistryError, match="no champion to roll back"):
        registry.rollback()
    assert registry.alias_history() == []


def test_rollback_walks_back_through_the_champions(store, trained):
    registry = Registry(NAME, store)
    for _ in range(3):
        register(store, trained["good"])
    for version in (1, 2, 3):
        registry.move_alias(CHAMPION, version, f"v{version}", action="approve")
    assert registry.rollback().to_version == 2
    assert registry.rollback().to_version == 1  # two champions back, not back and forth
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()


def test_list_versions(store, trained):
    first = register(store, trained["good"])
    evaluate_and_promote(first, trained["test"], NAME, store)
    register(store, trained["good"])
    rows = Registry(NAME, store).list_versions()
    assert [r["version"] for r in rows] == [2, 1]
    assert rows[1]["aliases"] == [CHALLENGER, CHAMPION] and rows[0]["aliases"] == []
    assert rows[1]["decision"] == PROMOTED and rows[0]["decision"] == ""
    assert rows[1]["f1"] == pytest.approx(trained["good"].metrics["test"]["f1"])
    assert rows[1]["eval_f1"] == pytest.approx(rows[1]["f1"], abs=1e-5)
    assert rows[1]["created"].endswith("+00:00")
