"""The continual loop with time simulated, stage by stage, with real parts only.

The shared data is split by ``created_on`` into batches that "arrive" one after another in a source
folder; the real CLI runs on a real state folder (DuckDB, dlt, Great Expectations, dbt, Optuna, MLflow,
Evidently, kfp.local). After each stage the test checks the watermark, the run keys, the aliases and the
alias log:

1. batch 1 (600 rows) arrives: the sensor runs continual (approval auto): v1 is the champion;
2. nothing new: no run, the watermark stays;
3. a batch below the threshold: no run;
4. a real batch: exactly one run, although ``sense --run`` is called twice;
5. a batch built to drift (one class only): the sensor pipeline (retrain on drift, approval manual) flags
   it, its report names why, and the champion does not move by itself;
6. a challenger trained on shuffled labels: rejected;
7. a better one under manual approval: pending until ``tagifai models approve``;
8. ``tagifai models rollback`` restores the previous champion.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_continual import DATA, _tagifai

pytestmark = pytest.mark.e2e

MODEL = "tagifai"
RUN = ["--num-trials", "1"]


class World:
    """A source folder that grows batch by batch, and one state folder that lives through every stage."""

    def __init__(self, tmp: Path):
        projects = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
        tags = pd.read_csv(DATA / "tags.csv", dtype=str, keep_default_na=False)
        order = pd.to_datetime(projects["created_on"]).argsort(kind="stable")
        self.projects = projects.iloc[order].reset_index(drop=True)
        self.tags = tags
        self.source = tmp / "source"
        self.source.mkdir()
        self.home = tmp / "home"
        self.arrived = 0
        self.extra_projects = self.projects.iloc[:0]
        self.extra_tags = tags.iloc[:0]

    @property
    def projects_csv(self) -> str:
        return str(self.source / "projects.csv")

    @property
    def tags_csv(self) -> str:
        return str(self.source / "tags.csv")

    def arrive(self, rows: int) -> None:
        """The next ``rows`` rows of the shared data (by created_on) land in the source."""
        self.arrived += rows
        self._write()

    def arrive_drifted(self, rows: int, tag: str = "computer-vision") -> pd.DataFrame:
        """``rows`` new projects of one class only (copies of real ones, new ids, later dates, new titles)."""
        labelled = self.projects.merge(self.tags, on="id")
        pool = labelled[labelled["tag"] == tag]
        picked = pool.sample(n=rows, replace=len(pool) < rows, random_state=0).reset_index(drop=True)
        last = pd.to_datetime(self.projects["created_on"].iloc[self.arrived - 1])
        next_id = max(int(i) for i in self.projects["id"]) + 1 + len(self.extra_projects)
        new = pd.DataFrame(
            {
                "id": [str(next_id + i) for i in range(rows)],
                "created_on": [str(last + pd.Timedelta(hours=i + 1)) for i in range(rows)],
                "title": [f"{t} (vision batch {i})" for i, t in enumerate(picked["title"])],
                "description": picked["description"].to_numpy(),
            }
        )
        self.extra_projects = pd.concat([self.extra_projects, new], ignore_index=True)
        self.extra_tags = pd.concat([self.extra_tags, pd.DataFrame({"id": new["id"], "tag": tag})], ignore_index=True)
        self._write()
        return new

    def _write(self) -> None:
        projects = pd.concat([self.projects.iloc[: self.arrived], self.extra_projects], ignore_index=True)
        tags = pd.concat([self.tags[self.tags["id"].isin(projects["id"])], self.extra_tags], ignore_index=True)
        projects[["id", "created_on", "title", "description"]].to_csv(self.projects_csv, index=False)
        tags[["id", "tag"]].drop_duplicates("id").to_csv(self.tags_csv, index=False)

    # --- the CLI, as a person runs it

    def tagifai(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return _tagifai(self.home, *args, check=check, env={"DATA_DIR": str(self.source), **(env or {})})

    def sense(self, *args: str, env: dict | None = None) -> tuple[dict, str]:
        """``tagifai sense [args]``: the decision (the first JSON document printed) and the whole output."""
        out = self.tagifai("sense", "--projects", self.projects_csv, "--tags", self.tags_csv, *args, env=env).stdout
        decision, _ = json.JSONDecoder().raw_decode(out)
        return decision, out

    # --- what the state folder holds

    def watermark(self) -> dict | None:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            rows = con.sql("SELECT value FROM main.tagifai_watermark WHERE name = 'continual'").fetchall()
        return json.loads(rows[0][0]) if rows else None

    def run_records(self) -> set[str]:
        folder = self.home / "sensor"
        return {p.stem for p in folder.glob("continual-*.json")} if folder.exists() else set()

    def models(self) -> list[dict]:
        return json.loads(self.tagifai("models", "list", "--json").stdout)

    def aliases(self) -> dict[str, int]:
        return {alias: row["version"] for row in self.models() for alias in row["aliases"]}

    def history(self) -> list[dict]:
        return json.loads(self.tagifai("models", "history", "--json").stdout)

    def last_created_on(self) -> str:
        projects = pd.read_csv(self.projects_csv, dtype=str)
        return pd.to_datetime(projects["created_on"]).max().isoformat(timespec="seconds")


def _moves(history: list[dict]) -> list[tuple]:
    return [(m["alias"], m["from_version"], m["to_version"], m["action"]) for m in history]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("continual-stages"))


def test_the_continual_loop_stage_by_stage(world: World):
    auto = {"TAGIFAI_APPROVAL": "auto"}

    # 1. batch 1 arrives: no watermark yet, the sensor runs continual and the first model becomes champion
    #    (600 rows: with fewer, mlops has under 5% of the rows, folds into "other" and a behavioral test fails)
    world.arrive(600)
    decision, out = world.sense("--run", *RUN, env=auto)
    key1 = decision["run_key"]
    assert decision["retrain"] is True and decision["new_rows"] == 600, out
    assert f"watermark advanced to {key1}" in out, out
    mark = world.watermark()
    assert mark["run_key"] == key1 and mark["rows"] == 600 and mark["last_created_on"] == world.last_created_on()
    assert world.run_records() == {key1}
    assert world.aliases() == {"champion": 1, "challenger": 1}
    assert _moves(world.history()) == [("challenger", None, 1, "challenger"), ("champion", None, 1, "promote")]
    summary = json.loads((world.home / "last_run.json").read_text())
    assert summary["status"] == "succeeded" and "drift" in [s["name"] for s in summary["steps"]]
    assert summary["drift"] is False, "no champion yet: nothing to drift from"

    # 2. nothing new: no run, same key, the watermark stays
    decision, out = world.sense("--run", *RUN, env=auto)
    assert decision["retrain"] is False and decision["new_rows"] == 0 and decision["run_key"] == key1
    assert "running continual" not in out
    assert world.watermark() == mark and world.run_records() == {key1}

    # 3. a batch below the threshold (50): no run
    world.arrive(20)
    decision, out = world.sense("--run", *RUN, env=auto)
    assert decision["retrain"] is False and decision["new_rows"] == 20 and "20 new row(s) < 50" in decision["reason"]
    assert decision["run_key"] != key1, "the key names the data the source holds now"
    assert "running continual" not in out
    assert world.watermark() == mark and world.run_records() == {key1}

    # 4. a real batch: exactly one run, even when sense is called twice
    world.arrive(80)
    decision, out = world.sense("--run", *RUN, env=auto)
    key4 = decision["run_key"]
    assert decision["retrain"] is True and decision["new_rows"] == 100, out
    again, out_again = world.sense("--run", *RUN, env=auto)
    assert again["retrain"] is False and again["run_key"] == key4 and "running continual" not in out_again
    mark4 = world.watermark()
    assert mark4["run_key"] == key4 and mark4["rows"] == 700 and mark4["last_created_on"] == world.last_created_on()
    assert world.run_records() == {key1, key4}
    outcome4 = next(m for m in world.models() if m["version"] == 2)["decision"]
    assert outcome4 in ("promoted", "rejected")  # approval auto: never left waiting
    champion4 = 2 if outcome4 == "promoted" else 1
    assert world.aliases() == {"champion": champion4, "challenger": 2}
    moves4 = _moves(world.history())
    assert moves4[:2] == [("challenger", None, 1, "challenger"), ("champion", None, 1, "promote")]
    assert moves4[2] == ("challenger", 1, 2, "challenger")
    assert moves4[3:] == ([("champion", 1, 2, "promote")] if outcome4 == "promoted" else [])

    # 5. a batch built to drift (computer vision only): the sensor pipeline, retraining only on drift and
    #    under manual approval, flags it, names why, retrains, and the champion does not move by itself
    world.arrive_drifted(80)
    drift_env = {"TAGIFAI_RETRAIN_ON": "drift", "TAGIFAI_APPROVAL": "manual"}
    world.tagifai("run", "sensor", "--projects", world.projects_csv, "--tags", world.tags_csv, *RUN, env=drift_env)
    summary = json.loads((world.home / "last_run.json").read_text())
    names = [s["name"] for s in summary["steps"]]
    assert summary["status"] == "succeeded" and summary["retrain"] is True and summary["new_rows"] == 80
    assert summary["drift"] is True and any("label" in r for r in summary["drift_reasons"]), summary
    assert "evaluate" in names and names[-2:] == ["advance-watermark", "notify"], names
    report = Path(summary["run_dir"]) / "drift" / "report"  # this run's drift report, not an earlier run's
    assert "computer-vision" in report.read_text(encoding="utf-8")
    mark5 = world.watermark()
    assert mark5["run_key"] == summary["run_key"] and mark5["rows"] == 780
    assert world.aliases()["champion"] == champion4, "manual approval: the champion stays"
    assert next(m for m in world.models() if m["version"] == 3)["decision"] in ("pending-approval", "rejected")

    # 6. a challenger trained on shuffled labels is rejected; the champion stays
    bad = _register(world, shuffle=True)
    assert _gate(world, bad, "auto") == "rejected"
    assert world.aliases() == {"champion": champion4, "challenger": bad}

    # 7. a better one (trained on every row, scored on rows the champion never saw) waits for a person
    good = _register(world, shuffle=False)
    assert _gate(world, good, "manual") == "pending-approval"
    assert world.aliases() == {"champion": champion4, "challenger": good}
    world.tagifai("models", "approve", str(good), "--reason", "read the drift and evaluation reports")
    assert world.aliases()["champion"] == good

    # 8. rollback restores the previous champion, and the log holds every move with who and why
    world.tagifai("models", "rollback", "--reason", "complaints after the release")
    assert world.aliases()["champion"] == champion4
    history = world.history()
    assert _moves(history)[-2:] == [("champion", champion4, good, "approve"), ("champion", good, champion4, "rollback")]
    assert history[-1]["reason"] == "complaints after the release" and history[-1]["actor"]
    assert [m["moved_at"] for m in history] == sorted(m["moved_at"] for m in history)
    # the watermark never moved after stage 5: the gate acts on models, not on data
    assert world.watermark() == mark5


# --- stages 6 and 7 go through the library, as a notebook or a CI job of the user would


def _labelled(world: World) -> pd.DataFrame:
    with duckdb.connect(str(world.home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql("SELECT * FROM main.labeled_projects ORDER BY id").df()


def _register(world: World, shuffle: bool) -> int:
    from tagifai import tracking
    from tagifai.train import TrainArgs, train

    df = _labelled(world)
    if shuffle:
        df["tag"] = np.random.default_rng(0).permutation(df["tag"].to_numpy())
    result = train(df, TrainArgs(seed=7))
    uri = f"sqlite:///{world.home / 'mlflow.db'}"
    info = tracking.log_training(
        result.model,
        result.args,
        {"test": result.metrics.get("test") or {}},
        MODEL,
        tracking_uri=uri,
        experiment_name="tagifai",
        artifact_root=(world.home / "mlartifacts").as_uri(),
    )
    world.eval_rows = _labelled(world).tail(120)  # the newest rows: the stage-4 champion never saw them
    return int(info["version"])


def _gate(world: World, version: int, approval: str) -> str:
    from tagifai.workflows import evaluate_and_promote

    uri = f"sqlite:///{world.home / 'mlflow.db'}"
    return evaluate_and_promote(f"models:/{MODEL}/{version}", world.eval_rows, MODEL, uri, approval=approval).outcome
