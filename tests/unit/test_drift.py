"""The drift step's library (tagifai/drift.py) on the real Made With ML rows, with the real Evidently (no mocks).

The champion tests use a real MLflow SQLite store and a DuckDB warehouse in tmp_path, and the small
TF-IDF model of the ``gate_models`` fixture.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from tagifai import drift
from tagifai.config import Settings
from tagifai.drift import DriftResult, DriftThresholds, detect, drift_against_champion, split_at, write_report

MODEL = "tagifai-drift"


# --------------------------------------------------------------------------- helpers


def stratified_halves(df: pd.DataFrame, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two random halves of the rows with the same tag mix (the same distribution, by construction)."""
    rng = np.random.default_rng(seed)
    first = []
    for _, group in df.groupby("tag"):
        idx = rng.permutation(group.index.to_numpy())
        first += list(idx[: len(idx) // 2])
    return df.loc[sorted(first)], df.drop(index=first)


def cooking_rows(n: int, tags: list[str], seed: int = 0) -> pd.DataFrame:
    """Recipe titles and descriptions: text from another domain, with tags drawn from the reference's."""
    rng = np.random.default_rng(seed)
    styles = ["Creamy", "Easy weeknight", "Spicy", "Vegan", "Classic", "Grandma's", "One-pot", "Crispy", "Smoky"]
    dishes = ["risotto", "lasagna", "pancakes", "banana bread", "chili", "curry", "ramen", "paella", "tiramisu",
              "brownies", "gazpacho", "focaccia", "shakshuka", "dumplings", "meatballs", "apple pie"]  # fmt: skip
    ingredients = ["garlic", "butter", "basil", "cinnamon", "parmesan", "chickpeas", "coconut milk", "lemon zest",
                   "brown sugar", "fresh ginger", "olive oil", "thyme", "mushrooms", "honey", "paprika"]  # fmt: skip
    rows = []
    for i in range(n):
        a, b, c = rng.choice(ingredients, 3, replace=False)
        rows.append(
            {
                "id": 10_000 + i,
                "created_on": pd.Timestamp("2021-01-01") + pd.Timedelta(hours=i),
                "title": f"{rng.choice(styles)} {rng.choice(dishes)} with {a}",
                "description": f"Simmer the {b} and {c} with a pinch of salt, then bake for {rng.integers(10, 60)} "
                f"minutes. Serves {rng.integers(2, 8)}; a cozy dinner recipe for the whole family.",
                "tag": str(rng.choice(tags)),
            }
        )
    return pd.DataFrame(rows)


class _Elements(HTMLParser):
    """Every tag's attributes and every <style> text of a page (script bodies are opaque to the parser)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


_CSS_REMOTE = re.compile(r"""@import\s*(?:url\()?\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I)


def remote_fetches(page: str) -> list[str]:
    """URLs a browser would fetch when opening ``page``: script/link/img/... src or href, CSS @import/url()."""
    parser = _Elements()
    parser.feed(page)
    remote = ("http://", "https://", "//")
    found = [
        f"{tag} {value}"
        for tag, attrs in parser.tags
        if tag in ("script", "link", "img", "iframe", "source", "embed", "object", "audio", "video")
        for key, value in attrs.items()
        if key in ("src", "href", "data") and (value or "").strip().lower().startswith(remote)
    ]
    for css in parser.styles:
        found += [f"css {m.group(0)}" for m in _CSS_REMOTE.finditer(css)]
    return found


@pytest.fixture
def no_network(monkeypatch):
    """Fail (and record) any socket connection or name lookup that is not loopback, and any new process."""
    attempts: list[str] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local(host) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        if host in (None, "", "localhost") or str(host).endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"network disabled in this test: {address}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            attempts.append(f"getaddrinfo {host}")
            raise socket.gaierror(f"network disabled in this test: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    class Popen(subprocess.Popen):  # iterative-telemetry posts its events from a detached `python -c` process
        def __init__(self, args, *rest, **kwargs):
            attempts.append(f"subprocess {str(args)[:300]}")
            raise OSError("processes disabled in this test")

    monkeypatch.setattr(subprocess, "Popen", Popen)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: connect(self, address) or 0)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture(scope="module")
def one_class(_labeled_projects):
    """A batch of 60 computer-vision rows against the other 704 rows."""
    df = _labeled_projects
    new = df[df["tag"] == "computer-vision"].sample(60, random_state=1)
    reference = df.drop(index=new.index)
    return reference, new, detect(reference, new)


# --------------------------------------------------------------------------- thresholds and splitting


def test_thresholds_default_to_the_settings_and_follow_the_environment(monkeypatch):
    for name in ("PVALUE", "JENSENSHANNON", "DOMAIN_AUC", "OOV_INCREASE", "CONFIDENCE_DROP"):
        monkeypatch.delenv(f"TAGIFAI_DRIFT_{name}", raising=False)
    assert DriftThresholds() == DriftThresholds.from_settings(Settings()) == DriftThresholds(0.05, 0.1, 0.55, 0.05, 0.1)
    monkeypatch.setenv("TAGIFAI_DRIFT_DOMAIN_AUC", "0.7")
    monkeypatch.setenv("TAGIFAI_DRIFT_CONFIDENCE_DROP", "0.2")
    assert DriftThresholds.from_settings() == DriftThresholds(domain_auc=0.7, confidence_drop=0.2)
    with pytest.raises(AttributeError):
        DriftThresholds().pvalue = 0.5  # frozen


def test_split_at_the_watermark_by_created_on():
    df = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "created_on": ["2020-03-01 10:00:00", "2020-03-02 10:00:00", "2020-03-03 10:00:00", None],
            "title": list("abcd"),
            "description": list("abcd"),
            "tag": ["mlops"] * 4,
        }
    )
    reference, new = split_at(df, "2020-03-02T10:00:00")
    assert reference["id"].tolist() == [1, 2] and new["id"].tolist() == [3]  # at the watermark is reference
    reference, new = split_at(df, "2020-03-02T11:00:00+02:00")  # 09:00 UTC
    assert reference["id"].tolist() == [1] and new["id"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="created_on"):
        split_at(df.drop(columns="created_on"), "2020-03-02")


# --------------------------------------------------------------------------- the checks


def test_two_random_halves_of_the_same_data_do_not_drift(labeled_df):
    """Halves drawn within each tag. Unstratified random halves are a different story: Evidently's chi-square
    takes the reference proportions as exact, and flags about a third of them at p < 0.05 (docs/drift.md)."""
    reference, new = stratified_halves(labeled_df)
    result = detect(reference, new)
    checks = result.checks
    assert checks["label"]["method"] == "chisquare" and checks["label"]["value"] > 0.5  # Evidently: <= 1000 rows
    assert checks["domain"]["method"] == "abs_text_content_drift" and checks["domain"]["value"] < 0.55
    assert checks["text_length"]["method"] == "ks" and checks["text_length"]["value"] > 0.05
    assert abs(checks["oov"]["value"]) < 0.05 and 0 < checks["oov"]["oov_rate_reference"] < 1
    assert not result.drifted and result.reasons == [] and result.skipped is None
    assert checks["prediction"]["skipped"] and any("prediction check skipped" in n for n in result.notes)
    assert result.class_mix["reference"]["natural-language-processing"] == pytest.approx(0.4058, abs=0.01)
    metrics = result.metrics()
    assert metrics["drifted"] == 0 and metrics["new_rows"] == len(new) and metrics["domain_auc"] < 0.55
    assert {"label_pvalue", "text_length_pvalue", "oov_rate_new", "oov_rate_reference"} <= set(metrics)


def test_a_one_class_batch_flags_label_drift_naming_the_class(one_class):
    _, new, result = one_class
    label = result.checks["label"]
    assert label["drifted"] and label["value"] < 0.05 and label["new_mix"] == {"computer-vision": 1.0}
    assert result.drifted and result.reasons[0].startswith("label: chi-square p=")
    assert "< 0.05; new rows are 100% computer-vision (reference 32%)" in result.reasons[0]
    assert result.metrics()["label_pvalue"] < 0.05 and result.metrics()["label_drifted"] == 1
    assert result.class_mix["new"] == {"computer-vision": 1.0} and result.new_rows == len(new) == 60


def test_text_from_another_domain_flags_the_domain_classifier_and_oov(labeled_df):
    reference = labeled_df
    new = cooking_rows(80, sorted(reference["tag"].unique()))
    result = detect(reference, new)
    domain, oov = result.checks["domain"], result.checks["oov"]
    assert domain["drifted"] and domain["value"] > 0.9
    assert oov["drifted"] and oov["oov_rate_new"] > oov["oov_rate_reference"] + 0.05
    reasons = " | ".join(result.reasons)
    assert "domain: domain classifier ROC AUC" in reasons and "> 0.55" in reasons
    assert "oov: " in reasons and "out of the reference vocabulary" in reasons
    json.dumps(result.to_dict())  # serialisable as it is


def test_thresholds_from_settings_are_honoured(labeled_df):
    reference, new = stratified_halves(labeled_df, seed=3)
    p = detect(reference, new).checks["text_length"]["value"]
    assert 0.01 < p < 0.99
    above = detect(reference, new, DriftThresholds.from_settings(Settings(drift_pvalue=min(p + 0.002, 0.999))))
    below = detect(reference, new, DriftThresholds.from_settings(Settings(drift_pvalue=max(p - 0.002, 0.001))))
    assert above.checks["text_length"]["drifted"] and above.drifted and above.reasons[0].startswith("text_length: K-S")
    assert not below.checks["text_length"]["drifted"]
    assert above.checks["text_length"]["threshold"] == pytest.approx(min(p + 0.002, 0.999))


def test_a_reference_over_1000_rows_uses_jensen_shannon_and_its_setting(one_class):
    reference, new, _ = one_class
    big = pd.concat([reference, reference], ignore_index=True)  # 1408 rows: Evidently switches to distances
    result = detect(big, new)
    label = result.checks["label"]
    assert label["method"] == "jensenshannon" and label["threshold"] == 0.1 and label["drifted"]
    assert result.reasons[0].startswith(
        f"label: Jensen-Shannon distance {label['value']:.4g} >= 0.1; new rows are 100%"
    )
    assert result.metrics()["label_jensenshannon"] == pytest.approx(label["value"])
    looser = DriftThresholds.from_settings(Settings(drift_jensenshannon=min(label["value"] + 0.01, 0.99)))
    assert not detect(big, new, looser).checks["label"]["drifted"]


def test_prediction_checks_use_the_reference_predictions(one_class):
    reference, new, _ = one_class

    def predict(df):  # a "model" that is sure of mlops on the reference and unsure of computer-vision
        sure = df["tag"] != "computer-vision"
        return np.where(sure, "mlops", "computer-vision").tolist(), np.where(sure, 0.9, 0.5)

    given = {"predicted": ["mlops"] * 100, "confidence": [0.9] * 100}
    result = detect(reference, new, predict=predict, reference_predictions=given)
    prediction, confidence = result.checks["prediction"], result.checks["confidence"]
    assert prediction["drifted"] and "the champion predicts 100% computer-vision (reference 0%)" in prediction["reason"]
    assert confidence["drifted"] and confidence["value"] == pytest.approx(0.4)
    assert confidence["reference"] == "the champion's held-out test split"
    assert "confidence: mean 0.500 on new rows vs 0.900" in confidence["reason"]
    assert result.metrics()["mean_confidence_new"] == pytest.approx(0.5)

    loose = detect(reference, new, DriftThresholds(confidence_drop=0.41), predict=predict, reference_predictions=given)
    assert not loose.checks["confidence"]["drifted"]  # a drop of 0.4 is within 0.41

    optimistic = detect(reference, new, predict=predict)  # no reference predictions: predict on reference rows
    assert "optimistic" in optimistic.checks["confidence"]["reference"]
    assert any("optimistic" in n for n in optimistic.notes)


def test_no_new_rows_is_skipped_and_the_report_says_why(labeled_df, tmp_path):
    result = detect(labeled_df, labeled_df.iloc[0:0])
    assert result.skipped == "no new rows to compare" and not result.drifted and result.checks == {}
    assert result.metrics() == {"drifted": 0.0, "skipped": 1.0, "new_rows": 0.0, "reference_rows": 764.0}
    write_report(result, labeled_df, labeled_df.iloc[0:0], tmp_path / "r.html", tmp_path / "r.json")
    page = (tmp_path / "r.html").read_text()
    assert "Drift not checked: no new rows to compare" in page and len(page) < 10_000
    assert json.loads((tmp_path / "r.json").read_text())["drift"]["skipped"] == "no new rows to compare"


# --------------------------------------------------------------------------- the report and the network


def test_the_report_is_offline_and_starts_with_the_summary(one_class, tmp_path):
    reference, new, result = one_class
    write_report(result, reference, new, tmp_path / "drift.html", tmp_path / "drift.json")
    page = (tmp_path / "drift.html").read_text()
    assert remote_fetches(page) == [] and drift.external_references(page) == []
    assert "drawDashboard" in page and "data:font/ttf;base64," in page  # Evidently's bundle and font, inlined
    summary = page.index('id="tagifai-drift-summary"')
    assert summary < page.index('id="root_') and "Drift detected" in page[summary : summary + 500]
    assert "new rows are 100% computer-vision (reference 32%)" in page
    saved = json.loads((tmp_path / "drift.json").read_text())
    assert saved["drift"]["drifted"] is True and saved["drift"]["reasons"] == result.reasons
    evidently_metrics = saved["evidently"]["Data: new rows vs the reference"]["metrics"]
    assert any(m["config"]["column"] == "tag" and m["value"] < 0.05 for m in evidently_metrics)

    rebuilt = DriftResult(**{k: v for k, v in saved["drift"].items()})  # no Evidently runs: the rows are rerun
    write_report(rebuilt, reference, new, tmp_path / "again.html")
    again = (tmp_path / "again.html").read_text()
    assert "recomputed from the rows" in again and "drawDashboard" in again and remote_fetches(again) == []


def test_external_references_are_found_and_removed():
    page = (
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        "<style>@import url(https://cdn.example/x.css); .a { color: red }</style>"
        '<script src="//cdn.example/lib.js"></script><script>var doc = "https://example.com/docs";</script>'
        '</head><body><img src="http://example.com/a.png"><p>text</p></body></html>'
    )
    assert len(remote_fetches(page)) == 4 and len(drift.external_references(page)) == 4
    clean, removed = drift._self_contained(page)
    assert len(removed) == 4 and remote_fetches(clean) == [] and drift.external_references(clean) == []
    assert 'var doc = "https://example.com/docs"' in clean and "<p>text</p>" in clean and ".a { color: red }" in clean


def test_nothing_phones_home(one_class, no_network, tmp_path, monkeypatch):
    reference, new, _ = one_class
    result = detect(reference, new)
    write_report(result, reference, new, tmp_path / "drift.html", tmp_path / "drift.json")
    assert no_network == []
    from evidently.telemetry import event_logger

    assert not event_logger.is_enabled() and event_logger.send({"probe": 1}) is None and no_network == []
    assert all(os.environ.get(k) == v for k, v in drift.TELEMETRY_OPT_OUT.items())
    # The guard does catch both ways out: a connection, and telemetry's sender process when it is enabled
    # (its URL pointed at loopback first, so even a broken guard would send nothing anywhere).
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    for name in drift.TELEMETRY_OPT_OUT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(event_logger, "url", "http://127.0.0.1:9/")
    assert event_logger.is_enabled()
    with pytest.raises(OSError, match="processes disabled"):
        event_logger.send({"probe": 1})
    assert "requests.post" in no_network[-1]


_GUARDED_RUN = """
import ipaddress, json, socket, sys
attempts = []
def local(host):
    host = host.decode() if isinstance(host, bytes) else host
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False
real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
        attempts.append(f"connect {address}")
        raise OSError("network disabled")
    return real_connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    if not local(host):
        attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror("network disabled")
    return real_getaddrinfo(host, *args, **kwargs)
import subprocess
class Popen(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        attempts.append(f"subprocess {str(args)[:300]}")
        raise OSError("processes disabled")
socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
subprocess.Popen = Popen
import pandas as pd
from tagifai import drift
rows = lambda n, words: pd.DataFrame({"title": [f"{words} {i}" for i in range(n)],
                                      "description": [f"about {words} number {i}" for i in range(n)],
                                      "tag": ["mlops", "computer-vision"] * (n // 2)})
reference, new = rows(40, "transformers for text"), rows(20, "slow cooker chili")
result = drift.detect(reference, new)
drift.write_report(result, reference, new, sys.argv[1], sys.argv[2])
print(json.dumps({"attempts": attempts, "drifted": result.drifted}))
"""


def test_nothing_phones_home_from_import_to_report(tmp_path):
    """In a fresh process with the network guard on before anything is imported (Evidently included)."""
    out = subprocess.run(
        [sys.executable, "-c", _GUARDED_RUN, str(tmp_path / "r.html"), str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k not in drift.TELEMETRY_OPT_OUT},  # the module sets them
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"attempts": [], "drifted": True} and (tmp_path / "r.html").stat().st_size > 100_000


# --------------------------------------------------------------------------- against the champion (MLflow)


@pytest.fixture(scope="module")
def store(tmp_path_factory, isolated_mlflow, gate_models, _labeled_projects):
    """A DuckDB warehouse with labeled_projects, and an MLflow store where version 1 records its watermark
    (80% of the rows) and reference predictions, and version 2 records neither. No alias is set."""
    import duckdb
    from mlflow.tracking import MlflowClient

    from tagifai import tracking

    root = tmp_path_factory.mktemp("drift_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.configure(uri, "drift-test", root / "artifacts")
    df = _labeled_projects.copy()
    watermark = df["created_on"].sort_values().iloc[int(len(df) * 0.8) - 1].isoformat()
    warehouse = root / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.register("df", df)
        con.execute("CREATE TABLE main.labeled_projects AS SELECT * FROM df")
    good = gate_models["good"]
    labels, confidences = drift._predictor(good.model)(gate_models["test"])
    refs = {"predicted": labels, "confidence": [float(c) for c in confidences]}
    v1 = tracking.log_training(
        good.model,
        good.args,
        {"test": good.metrics["test"]},
        MODEL,
        tags={drift.WATERMARK_TAG: watermark},
        artifacts={drift.REFERENCE_PREDICTIONS: refs},
        tracking_uri=uri,
    )
    v2 = tracking.log_training(good.model, good.args, {"test": good.metrics["test"]}, MODEL, tracking_uri=uri)
    return {
        "uri": uri,
        "warehouse": f"duckdb:///{warehouse}",
        "watermark": watermark,
        "client": MlflowClient(uri, uri),
        "v1": v1,
        "v2": v2,
        "rows": len(df),
        "newest": df["created_on"].max().isoformat(),
    }


def test_drift_against_the_champion(store, tmp_path):
    client, uri, wh = store["client"], store["uri"], store["warehouse"]
    if "champion" in client.get_registered_model(MODEL).aliases:
        client.delete_registered_model_alias(MODEL, "champion")

    nothing = drift_against_champion(wh, MODEL, uri, html_path=tmp_path / "none.html")
    assert nothing.skipped.startswith("no champion") and not nothing.drifted
    assert "Drift not checked: no champion" in (tmp_path / "none.html").read_text()

    client.set_registered_model_alias(MODEL, "champion", "2")
    blind = drift_against_champion(wh, MODEL, uri)
    assert (
        blind.champion_version == 2
        and "data_created_on_max" in blind.skipped
        and "no training watermark" in blind.skipped
    )

    client.set_registered_model_alias(MODEL, "champion", "1")
    result = drift_against_champion(
        wh, MODEL, uri, DriftThresholds(), html_path=tmp_path / "d.html", json_path=tmp_path / "d.json"
    )
    assert result.skipped is None and result.champion_version == 1 and result.reference_until == store["watermark"]
    assert (
        result.reference_rows == int(store["rows"] * 0.8) and result.reference_rows + result.new_rows == store["rows"]
    )
    assert result.checks["confidence"]["reference"] == "the champion's held-out test split"
    assert 0 < result.checks["confidence"]["mean_confidence_new"] <= 1 and "value" in result.checks["prediction"]
    assert not any("optimistic" in n for n in result.notes)
    page = (tmp_path / "d.html").read_text()
    assert "champion: version 1" in page and remote_fetches(page) == []
    assert (
        "Champion predictions: new rows vs its reference" in json.loads((tmp_path / "d.json").read_text())["evidently"]
    )


def test_drift_against_a_champion_without_reference_predictions_or_new_rows(store, tmp_path):
    client, uri, wh = store["client"], store["uri"], store["warehouse"]
    client.set_registered_model_alias(MODEL, "champion", "2")
    run_id = store["v2"]["run_id"]
    client.set_tag(run_id, drift.WATERMARK_TAG, store["watermark"])
    try:
        result = drift_against_champion(wh, MODEL, uri)
        assert result.skipped is None and result.champion_version == 2
        assert "optimistic" in result.checks["confidence"]["reference"]
        assert any(drift.REFERENCE_PREDICTIONS in n for n in result.notes)

        client.set_tag(run_id, drift.WATERMARK_TAG, store["newest"])
        caught_up = drift_against_champion(wh, MODEL, uri, html_path=tmp_path / "s.html")
        assert caught_up.skipped.startswith("no new rows") and caught_up.reference_rows == store["rows"]
        assert "Drift not checked: no new rows" in (tmp_path / "s.html").read_text()
    finally:
        client.delete_tag(run_id, drift.WATERMARK_TAG)


def test_no_champion_in_a_local_store_needs_no_mlflow(tmp_path):
    """A first run (no tracking database yet) and a store without the alias are answered with the standard
    library; the result is the one MLflow's client gave (tests above)."""
    import subprocess
    import sys

    db = tmp_path / "mlflow.db"
    code = (
        "import sys\nfrom tagifai.drift import drift_against_champion\n"
        f"r = drift_against_champion('duckdb:///{tmp_path}/none.duckdb', 'm', 'sqlite:///{db}')\n"
        "print(r.skipped)\nprint('mlflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    skipped, mlflow_loaded = done.stdout.strip().splitlines()
    assert skipped.startswith("no champion: m@champion is not set") and mlflow_loaded == "False"
    assert not db.exists()


def test_the_local_shortcut_answers_only_what_it_knows(store, tmp_path):
    from tagifai.drift import _no_local_champion

    client, uri = store["client"], store["uri"]
    client.set_registered_model_alias(MODEL, "champion", "2")
    assert not _no_local_champion(uri, MODEL, "champion")
    assert _no_local_champion(uri, MODEL, "nobody")
    assert _no_local_champion(f"sqlite:///{tmp_path}/absent.db", MODEL, "champion")
    assert not _no_local_champion("http://127.0.0.1:1", MODEL, "champion")  # another store: MLflow decides
    (tmp_path / "other.db").write_bytes(b"not a database")
    assert not _no_local_champion(f"sqlite:///{tmp_path}/other.db", MODEL, "champion")
