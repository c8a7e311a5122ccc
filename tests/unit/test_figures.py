"""The library's pictures (tagifai/figures.py): self-contained HTML pages the steps write as KFP HTML artifacts."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tagifai import figures

PNG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"')


def _self_contained(page: str, images: int) -> None:
    assert page.startswith("<!doctype html>")  # the run report's collect names it .html by this
    assert len(PNG.findall(page)) == len(re.findall(r"<img ", page)) == images
    assert not re.search(r"https?://", page)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "default-src 'none'; img-src data:" in page


def _study(storage: str, trials: int, name: str = "s"):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.optimize(lambda t: t.suggest_float("C", 0.1, 1.0) - t.suggest_float("alpha", 0, 0.1), n_trials=trials)
    return study


def test_page_figures_reads_back_what_html_page_wrote():
    drawn = [
        figures.Figure('History <of> "trials" & more: here', uri="data:image/png;base64,iVBORw0KGgo=", note=""),
        figures.Figure("Importances", uri="data:image/png;base64,AAAA", note="fANOVA \u2013 on 3 trials: <b>"),
        figures.Figure("Nothing: drawn", note="not computed: 1 completed trial(s) & no <more>"),
    ]
    page = figures.html_page("Optimisation", drawn, "<table><tr><td>x</td></tr></table>")
    assert figures.page_figures(page) == drawn
    assert figures.page_figures("<html><body>no figures</body></html>") == []


def test_the_optimisation_page_takes_figures_already_drawn(tmp_path):
    drawn = ([figures.Figure("Optimisation history (Optuna)", note="drawn elsewhere")], {"complete": 7, "pruned": 2})
    page = figures.optimization_page(f"sqlite:///{tmp_path / 'none.db'}", "s", {}, drawn)
    assert "drawn elsewhere" in page and "7 complete, 2 pruned" in page and not (tmp_path / "none.db").exists()


def test_the_optimisation_page_has_history_and_importances(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, 4)
    page = figures.optimization_page(storage, "s", {"best_value": 0.9, "chosen": {"trial": 2, "reason": "beats"}})
    _self_contained(page, images=2)
    assert "4 complete" in page and "0.9000" in page and "trial 2: beats" in page


def test_a_study_of_one_trial_gives_the_note_instead_of_importances(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, 1)
    page = figures.optimization_page(storage, "s")
    _self_contained(page, images=1)  # the history is still drawn
    assert "not computed: 1 completed trial(s); parameter importances need at least 2" in page


def test_an_unreadable_study_is_a_note_and_no_storage_is_created(tmp_path):
    missing = tmp_path / "nowhere.db"
    page = figures.optimization_page(f"sqlite:///{missing}", "s")
    _self_contained(page, images=0)
    assert "is not there" in page and not missing.exists()


METRICS = {
    "overall": {"precision": 0.8, "recall": 0.75, "f1": 0.77, "num_samples": 20},
    "per_class": {
        "mlops": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "num_samples": 10},
        "other": {"precision": 0.7, "recall": None, "f1": None, "num_samples": 10},
    },
    "confusion_matrix": {"classes": ["mlops", "other"], "matrix": [[8, 2], [3, 7]]},
}


def test_the_evaluation_page_has_the_matrix_the_class_scores_and_the_decision():
    page = figures.evaluation_page(METRICS, "rejected", "f1 0.77 is not as good as <the champion>", "models:/t/2")
    _self_contained(page, images=2)
    assert 'class="rejected">rejected<' in page and "&lt;the champion&gt;" in page  # escaped
    assert "models:/t/2" in page and "f1 0.7700" in page


def test_a_picture_that_cannot_be_drawn_is_a_note(monkeypatch):
    def broken(*_a, **_k):
        raise ValueError("bad matrix")

    monkeypatch.setattr(figures, "confusion_matrix", broken)
    page = figures.evaluation_page(METRICS, "promoted", "no champion yet")
    _self_contained(page, images=1)
    assert "not drawn: ValueError: bad matrix" in page


def test_the_profile_page_counts_tags_and_lengths():
    df = pd.DataFrame(
        {"title": ["a", "bb", None], "description": ["xyz", None, "q"], "tag": ["mlops", "mlops", "other"]}
    )
    assert figures.profile_of(df) == ({"mlops": 2, "other": 1}, [4, 2, 1])
    page = figures.profile_page(df)
    _self_contained(page, images=1)
    assert "3 rows" in page


@pytest.mark.parametrize(
    "fig",
    [
        lambda: figures.confusion_matrix([], []),
        lambda: figures.class_scores({}),
        lambda: figures.data_profile({}, []),
    ],
)
def test_empty_input_is_a_note(fig):
    drawn = fig()
    assert not drawn.uri and drawn.note


def test_the_report_draws_with_the_library():
    from tagifai_cli.report import figures as report_figures

    assert report_figures.Figure is figures.Figure and report_figures.optuna_figures is figures.optuna_figures
