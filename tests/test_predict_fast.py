"""``tagifai predict`` from the champion's serving copy, without MLflow, and only while it is the champion.

A real MLflow SQLite store in a temporary state folder, two small TF-IDF-only models (v1 good, v2 trained on
shuffled labels, so their probabilities differ). The CLI runs in a fresh interpreter, which reports whether
it imported MLflow; which model answered is read from the probabilities it printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tagifai import tracking
from tagifai.predict import SERVING_INFO, load_serving_copy, predict, serving_dir
from tagifai.registry import Registry
from tagifai.tracking import CHAMPION

NAME = "tagifai-fast"
ROOT = Path(__file__).resolve().parent.parent
ROW = {"title": "Transfer learning with transformers", "description": "Using transformers for transfer learning."}

pytestmark = pytest.mark.usefixtures("isolated_mlflow")


@pytest.fixture(scope="module")
def trained(gate_models):
    return gate_models


@pytest.fixture
def state(tmp_path, trained):
    """v1 (good) champion through the Registry, v2 (shuffled labels) registered."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, "fast-test", tmp_path / "artifacts")
    for key in ("good", "bad"):
        result = trained[key]
        tracking.log_training(result.model, result.args, {"test": result.metrics["test"]}, NAME, tracking_uri=uri)
    Registry(NAME, uri, actor_name="test").move_alias(CHAMPION, 1, "seeded by the test", action="manual")
    return {"home": tmp_path, "uri": uri, "serving": serving_dir(uri, NAME)}


def expected_probs(model) -> list[float]:
    out = predict(model, pd.DataFrame([ROW]))
    return [float(out.iloc[0][c]) for c in out.columns if c.startswith("prob_")]


def cli_predict(state) -> tuple[list[float], bool, str]:
    """Probabilities printed by ``tagifai predict`` in a new interpreter, whether it imported MLflow, its stderr."""
    argv = ["predict", "--home", str(state["home"]), "--mlflow-tracking-uri", state["uri"]]
    argv += ["--title", ROW["title"], "--description", ROW["description"]]
    code = (
        "import sys\n"
        "from tagifai_cli.main import main\n"
        f"code = main({argv!r})\n"
        "print('MLFLOW-IMPORTED', 'mlflow' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}
    env["TAGIFAI_MODEL_NAME"] = NAME
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out, _, flag = done.stdout.rpartition("MLFLOW-IMPORTED ")
    record = json.loads(out)[0]
    return [float(v) for k, v in record.items() if k.startswith("prob_")], flag.strip() == "True", done.stderr


def served_version(state) -> int:
    return json.loads((state["serving"] / SERVING_INFO).read_text())["version"]


def test_the_two_models_answer_differently(trained):
    # what the other tests rely on to tell which version answered
    assert not np.allclose(expected_probs(trained["good"].model), expected_probs(trained["bad"].model), atol=1e-3)


def test_current_copy_is_served_without_mlflow(state, trained):
    assert served_version(state) == 1
    probs, imported_mlflow, err = cli_predict(state)
    assert not imported_mlflow, err
    np.testing.assert_allclose(probs, expected_probs(trained["good"].model), atol=1e-9)
    assert "warning" not in err


def test_registry_writes_the_compiled_form_and_the_cli_serves_it(state, trained):
    # tagifai/serving.py: the champion's numbers without scikit-learn, beside the pickle MLflow stored
    info = json.loads((state["serving"] / SERVING_INFO).read_text())
    assert info["compiled"]["file"].endswith(".npz") and (state["serving"] / info["compiled"]["file"]).is_file()
    lookup = load_serving_copy(state["uri"], NAME, compiled=True)
    assert lookup.used and lookup.compiled and not lookup.warning
    frame = pd.DataFrame([ROW])
    expected = trained["good"].model.predict_proba(frame)
    np.testing.assert_allclose(lookup.model.predict_proba(frame), expected, rtol=0, atol=1e-12)
    code = (
        "import sys\n"
        "from tagifai.predict import load_serving_copy\n"
        f"lookup = load_serving_copy({state['uri']!r}, {NAME!r}, compiled=True)\n"
        f"lookup.model.predict_proba([{ROW['title']!r}])\n"
        "print(lookup.compiled, sorted(m for m in ('sklearn', 'scipy', 'pandas', 'mlflow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.stdout.strip() == "True []", done.stderr[-3000:]


def test_alias_moved_by_the_registry_serves_the_new_version(state, trained):
    Registry(NAME, state["uri"], actor_name="test").approve(2, "the test moves the champion", force=True)
    assert served_version(state) == 2
    probs, imported_mlflow, err = cli_predict(state)
    assert not imported_mlflow, err
    np.testing.assert_allclose(probs, expected_probs(trained["bad"].model), atol=1e-9)


def test_alias_moved_behind_the_registrys_back_is_not_served_stale(state, trained):
    # e.g. in the MLflow UI: the serving copy still says v1, the store says v2
    tracking._client(state["uri"]).set_registered_model_alias(NAME, CHAMPION, "2")
    assert served_version(state) == 1
    lookup = load_serving_copy(state["uri"], NAME)
    assert not lookup.used and lookup.reason.startswith("stale") and not lookup.warning

    probs, imported_mlflow, err = cli_predict(state)
    assert imported_mlflow  # fell back to MLflow ...
    np.testing.assert_allclose(probs, expected_probs(trained["bad"].model), atol=1e-9)  # ... and served v2
    assert "warning" not in err  # stale is expected, not a fault
    assert served_version(state) == 2  # and refreshed the copy: the next call is fast again
    probs, imported_mlflow, _ = cli_predict(state)
    assert not imported_mlflow
    np.testing.assert_allclose(probs, expected_probs(trained["bad"].model), atol=1e-9)


def test_corrupted_copy_falls_back_with_a_warning(state, trained):
    import pickle

    info = json.loads((state["serving"] / SERVING_INFO).read_text())
    # a loadable pickle of the wrong model: only the hash tells it apart
    (state["serving"] / info["file"]).write_bytes(pickle.dumps(trained["bad"].model))
    lookup = load_serving_copy(state["uri"], NAME)
    assert not lookup.used and "sha256" in lookup.warning

    probs, imported_mlflow, err = cli_predict(state)
    assert imported_mlflow
    np.testing.assert_allclose(probs, expected_probs(trained["good"].model), atol=1e-9)
    assert "warning: serving copy" in err and "sha256" in err and "loading from MLflow" in err
    assert load_serving_copy(state["uri"], NAME).used  # rewritten from the registry


def test_no_copy_for_other_stores_and_none_without_a_champion(tmp_path):
    assert serving_dir("http://mlflow:5000", NAME) is None
    assert serving_dir("sqlite:///:memory:", NAME) is None
    assert serving_dir(f"sqlite:///{tmp_path / 'x' / 'mlflow.db'}", NAME) == tmp_path / "x" / "serving" / NAME
    assert not load_serving_copy("http://mlflow:5000", NAME).used
    assert load_serving_copy(f"sqlite:///{tmp_path / 'mlflow.db'}", NAME).reason == "no serving copy"


def test_without_champion_alias_the_copy_is_not_used(state):
    tracking._client(state["uri"]).delete_registered_model_alias(NAME, CHAMPION)
    lookup = load_serving_copy(state["uri"], NAME)
    assert not lookup.used and lookup.reason == f"no {CHAMPION} alias"
