"""The report's pictures, drawn with matplotlib as PNG ``data:`` URIs (the page needs no other file).

Optuna's own matplotlib visualisations for the study (history, parameter importances), and the
evaluation's confusion matrix and per-class scores, and the training data's tags and text lengths.
Each function returns a :class:`Figure` with either the picture or the reason there is none.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass


@dataclass
class Figure:
    title: str
    uri: str = ""  # data:image/png;base64,...
    note: str = ""  # why there is no picture, or what it shows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; the report is a file
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_matrix(labels: list[str], rows: list[list[int]]) -> Figure:
    title = "Confusion matrix (rows: true, columns: predicted)"
    if not labels or not rows:
        return Figure(title, note="no confusion matrix in the run")
    plt = _pyplot()
    size = 1.1 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rows, cmap="Blues")
    top = max((max(r) for r in rows if r), default=0)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return Figure(title, _png(fig))


def class_scores(per_class: dict[str, dict[str, float]]) -> Figure:
    title = "Per class: precision, recall, f1 on the test rows"
    if not per_class:
        return Figure(title, note="no per-class metrics in the run")
    plt = _pyplot()
    names = list(per_class)
    fig, ax = plt.subplots(figsize=(4.4, 0.9 + 0.5 * len(names)))
    height = 0.26
    for i, metric in enumerate(("precision", "recall", "f1")):
        values = [per_class[n].get(metric, 0.0) for n in names]
        ax.barh([k + (i - 1) * height for k in range(len(names))], values, height, label=metric)
    ax.set_yticks(range(len(names)), [f"{n} ({int(per_class[n].get('num_samples', 0))})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return Figure(title, _png(fig))


def data_profile(tags: dict[str, int], lengths: list[int]) -> Figure:
    title = "Training data: rows per tag and text lengths"
    if not tags and not lengths:
        return Figure(title, note="no dataset to profile")
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    names = sorted(tags, key=lambda k: -tags[k])
    left.barh(names, [tags[n] for n in names], color="#4c78a8")
    left.invert_yaxis()
    left.set_xlabel("rows")
    left.set_title("rows per tag", fontsize="medium")
    if lengths:
        right.hist(lengths, bins=30, color="#72b7b2")
        right.set_xlabel("characters in title + description")
        right.set_title(f"text lengths (median {sorted(lengths)[len(lengths) // 2]})", fontsize="medium")
    fig.tight_layout()
    return Figure(title, _png(fig))


def optuna_figures(storage: str, study_name: str) -> tuple[list[Figure], dict]:
    """Optuna's optimisation history and parameter importances for the study, and the study's counts.

    The importances need two completed trials (fANOVA fits on them); with fewer the figure says so.
    A missing SQLite file is not created.
    """
    history = Figure("Optimisation history (Optuna)")
    importances = Figure("Parameter importances (Optuna, fANOVA)")
    counts: dict = {}
    if not storage or not study_name:
        history.note = importances.note = "the run names no Optuna study"
        return [history, importances], counts
    if storage.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(storage.removeprefix("sqlite:///")).exists():
            history.note = importances.note = f"the Optuna storage {storage} is not there"
            return [history, importances], counts
    try:
        import optuna
        from optuna.visualization import matplotlib as plots
    except ImportError as exc:  # the optimize extra is not installed
        history.note = importances.note = f"no Optuna here ({exc})"
        return [history, importances], counts
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - a moved or deleted storage, an unknown study
        history.note = importances.note = f"study {study_name!r} not readable in {storage}: {exc}"
        return [history, importances], counts
    states = [t.state.name for t in study.trials]
    counts = {s.lower(): states.count(s) for s in sorted(set(states))}
    complete = counts.get("complete", 0)
    plt = _pyplot()
    # Optuna's plots switch matplotlib to its "ggplot" style for the whole process: undone on leaving
    with plt.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            ax = plots.plot_optimization_history(study)
            ax.figure.set_size_inches(5.6, 3.4)
            history.uri = _png(ax.figure)
        except Exception as exc:  # noqa: BLE001 - a picture is not worth failing the report
            history.note = f"Optuna could not draw the history: {exc}"
        if complete < 2:
            importances.note = f"not computed: {complete} completed trial(s); parameter importances need at least 2"
        else:
            try:
                ax = plots.plot_param_importances(study)
                ax.figure.set_size_inches(5.6, 3.4)
                importances.uri = _png(ax.figure)
            except Exception as exc:  # noqa: BLE001
                importances.note = f"Optuna could not compute the importances: {exc}"
    plt.close("all")
    return [history, importances], counts
