"""Pictures of a study, an evaluation and a dataset, drawn with matplotlib as PNG ``data:`` URIs.

Used twice: by the steps, which write them as KFP HTML artifacts (optimize's ``plots`` and ``profile``,
evaluate's ``plots``: the KFP and Vertex UIs show them), and by the run report of the command line
(``tagifai_cli/report/``). Each ``*_page`` function returns one self-contained HTML page (no script, no
stylesheet or image from elsewhere: a Content-Security-Policy that allows only ``data:`` images).

Optuna's own matplotlib visualisations for the study (history, parameter importances), the evaluation's
confusion matrix and per-class scores, and the training data's tags and text lengths. Each drawing
function returns a :class:`Figure` with either the picture or the reason there is none; a picture that
cannot be drawn is a note on the page, never a failed step.

matplotlib (and Optuna) are imported inside the functions, with the Agg backend: importing this module
costs nothing, and it works in any image (the note says so where matplotlib is missing).
"""

from __future__ import annotations

import base64
import html
import io
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Figure:
    title: str
    uri: str = ""  # data:image/png;base64,...
    note: str = ""  # why there is no picture, or what it shows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; the pictures go to files
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


def class_scores(per_class: Mapping[str, Mapping[str, float]]) -> Figure:
    title = "Per class: precision, recall, f1 on the test rows"
    if not per_class:
        return Figure(title, note="no per-class metrics in the run")
    plt = _pyplot()
    names = list(per_class)
    fig, ax = plt.subplots(figsize=(4.4, 0.9 + 0.5 * len(names)))
    height = 0.26
    for i, metric in enumerate(("precision", "recall", "f1")):
        values = [per_class[n].get(metric) or 0.0 for n in names]
        ax.barh([k + (i - 1) * height for k in range(len(names))], values, height, label=metric)
    ax.set_yticks(range(len(names)), [f"{n} ({int(per_class[n].get('num_samples') or 0)})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return Figure(title, _png(fig))


def data_profile(tags: Mapping[str, int], lengths: list[int]) -> Figure:
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


def profile_of(df) -> tuple[dict[str, int], list[int]]:
    """Rows per tag and text lengths (characters of title + description) of a labeled-projects frame."""
    tags: dict[str, int] = {}
    lengths: list[int] = []
    if "tag" in df.columns:
        tags = {str(k): int(v) for k, v in df["tag"].value_counts().items()}
    text = [df[c].fillna("").astype(str).str.len() for c in ("title", "description") if c in df.columns]
    if text:
        lengths = sum(text[1:], text[0]).astype(int).tolist()
    return tags, lengths


def study_figures(study: Any) -> tuple[list[Figure], dict]:
    """Optuna's optimisation history and parameter importances of a loaded ``study``, and its trial counts.

    The importances need two completed trials (fANOVA fits on them); with fewer the figure says so.
    """
    from optuna.visualization import matplotlib as plots

    history = Figure("Optimisation history (Optuna)")
    importances = Figure("Parameter importances (Optuna, fANOVA)")
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
        except Exception as exc:  # noqa: BLE001 - a picture is not worth failing the step or the report
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


def optuna_figures(storage: str, study_name: str) -> tuple[list[Figure], dict]:
    """:func:`study_figures` of the study ``study_name`` in ``storage`` (an Optuna RDB URL).

    A missing SQLite file is not created; a storage or study that cannot be read is a note.
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
        import optuna.visualization.matplotlib  # noqa: F401 - fails here when matplotlib is missing
    except ImportError as exc:  # the optimize extra is not installed
        history.note = importances.note = f"no Optuna here ({exc})"
        return [history, importances], counts
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - a moved or deleted storage, an unknown study
        history.note = importances.note = f"study {study_name!r} not readable in {storage}: {exc}"
        return [history, importances], counts
    return study_figures(study)


# --- the pages the steps write (KFP HTML artifacts) ----------------------------------------------------

_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222}"
    "h1{font-size:1.35em}figure{margin:1em 0}figure img{max-width:100%}"
    "figcaption{color:#555;font-size:.92em}.note{color:#8a6d3b}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    ".promoted{color:#1a7f37}.rejected{color:#b42318}.pending-approval{color:#9a6700}"
)


def _drawn(title: str, draw: Callable[[], Figure]) -> Figure:
    """``draw()``, or a note saying why it could not be drawn (no matplotlib, bad input): never raises."""
    try:
        return draw()
    except Exception as exc:  # noqa: BLE001 - a picture is not worth failing a step
        return Figure(title, note=f"not drawn: {type(exc).__name__}: {exc}")


def figure_html(fig: Figure) -> str:
    if not fig.uri:
        note = f'<span class="note">{html.escape(fig.note)}</span>'
        return f"<figure><figcaption>{html.escape(fig.title)}: {note}</figcaption></figure>"
    note = f" \u2013 {html.escape(fig.note)}" if fig.note else ""
    alt = html.escape(fig.title)
    return f'<figure><img src="{fig.uri}" alt="{alt}"><figcaption>{alt}{note}</figcaption></figure>'


def html_page(title: str, figures: Sequence[Figure], intro: str = "") -> str:
    """One self-contained page: ``title``, ``intro`` (HTML, already escaped), the figures."""
    body = "\n".join(figure_html(f) for f in figures)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{intro}\n{body}\n</body></html>\n"
    )


_FIGURE = re.compile(r"<figure>(.*?)</figure>", re.S)
_PICTURE = re.compile(r'<img src="([^"]*)" alt="([^"]*)"><figcaption>(.*?)</figcaption>', re.S)
_NOTE_ONLY = re.compile(r'<figcaption>(.*?): <span class="note">(.*?)</span></figcaption>', re.S)


def page_figures(page: str) -> list[Figure]:
    """The figures of a page written by :func:`html_page`, in order (what :func:`figure_html` wrote, read back):
    the run report shows the optimize step's pictures without drawing them again."""
    found = []
    for body in _FIGURE.findall(page):
        if match := _PICTURE.fullmatch(body):
            uri, alt, caption = match.groups()
            note = caption[len(alt) + 3 :] if caption.startswith(f"{alt} \u2013 ") else ""
            found.append(Figure(html.unescape(alt), uri=html.unescape(uri), note=html.unescape(note)))
        elif match := _NOTE_ONLY.fullmatch(body):
            found.append(Figure(html.unescape(match.group(1)), note=html.unescape(match.group(2))))
    return found


def optimization_figures(storage: str, study_name: str) -> tuple[list[Figure], dict]:
    """:func:`optuna_figures`, or one figure whose note says why nothing could be drawn; and the trial counts."""
    try:
        return optuna_figures(storage, study_name)
    except Exception as exc:  # noqa: BLE001 - no matplotlib here, a study Optuna cannot plot
        return [Figure("Optuna's plots", note=f"not drawn: {type(exc).__name__}: {exc}")], {}


def optimization_page(
    storage: str,
    study_name: str,
    summary: Mapping[str, Any] | None = None,
    drawn: tuple[list[Figure], dict] | None = None,
) -> str:
    """The optimize step's ``plots``: Optuna's history and parameter importances of the study it ran
    (``drawn``: :func:`optimization_figures` of it, when the caller has them already)."""
    figs, counts = drawn if drawn is not None else optimization_figures(storage, study_name)
    summary = summary or {}
    chosen = summary.get("chosen") or {}
    facts = [("study", study_name), ("trials", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none")]
    if summary.get("best_value") is not None:
        facts.append(("best trial validation f1", f"{summary['best_value']:.4f}"))
    if chosen:
        facts.append(("chosen", f"trial {chosen.get('trial')}: {chosen.get('reason', '')}"))
    intro = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return html_page("Optimisation (Optuna)", figs, intro + "</table>")


def evaluation_page(metrics: Mapping[str, Any], outcome: str, reason: str, model_uri: str = "") -> str:
    """The evaluate step's ``plots``: the decision, the confusion matrix and per-class scores on the test rows.

    ``metrics``: :func:`tagifai.evaluate.evaluate_model` of the challenger (``overall``, ``per_class``,
    ``confusion_matrix`` with ``classes`` and ``matrix``).
    """
    matrix = metrics.get("confusion_matrix") or {}
    labels, rows = list(matrix.get("classes") or []), list(matrix.get("matrix") or [])
    figs = [
        _drawn("Per class", lambda: class_scores(metrics.get("per_class") or {})),
        _drawn("Confusion matrix", lambda: confusion_matrix(labels, rows)),
    ]
    overall = metrics.get("overall") or {}
    scores = ", ".join(f"{k} {overall[k]:.4f}" for k in ("precision", "recall", "f1") if overall.get(k) is not None)
    decision = f'<strong class="{html.escape(outcome)}">{html.escape(outcome)}</strong>'
    intro = (
        f"<p>Decision: {decision} \u2013 {html.escape(reason)}</p>"
        f"<p>Challenger {html.escape(model_uri)} on the test rows: {html.escape(scores or 'no scores')}"
        f" ({int(overall.get('num_samples') or 0)} rows)</p>"
    )
    return html_page("Evaluation", figs, intro)


def profile_page(df) -> str:
    """The training data's profile: rows per tag and text lengths of a labeled-projects frame."""
    figure = _drawn("Training data", lambda: data_profile(*profile_of(df)))
    return html_page("Training data profile", [figure], f"<p>{len(df)} rows, {df.shape[1]} columns</p>")
