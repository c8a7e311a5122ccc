"""Hyperparameter optimisation with Optuna (optionally logged to MLflow).

Each trial samples training arguments (:func:`suggest_params`, the course's search space widened) and
scores them by stratified k-fold cross-validation on the train + validation part of the data (the
test split of ``base_args``, the one :func:`tagifai.train.train` holds out, is removed first: Optuna
never sees it). After each fold the trial reports the running mean of the fold f1 scores (weighted,
arg-max predictions: the threshold is chosen later, by training) and a :class:`MedianPruner` stops
trials that fall behind.

The study lives in an Optuna RDB storage (e.g. ``sqlite:///optuna.db``) and is loaded when it exists:
``num_trials`` is the number of finished (complete or pruned) trials the study should hold, so running
again with the same study name resumes after a crash and does nothing once the study is complete.
The sampler is a seeded TPE sampler: the same data, seed and history give the same trials.

The first trial of a new study is ``base_args`` itself, and the study's best trial replaces them only
when it wins by more than ``margin_se`` standard errors of the paired per-fold difference
(:func:`choose_trial`): on a few hundred rows the best of many trials is partly picked on noise.
The model family can be a parameter too (``models``), each family's own parameters conditional on it.

With the sentence embedding in the search space, one embedder serves every trial of a call: each
text of the train + validation part is encoded once, and test texts never are.

On large data the trials search on a sample: when train + validation hold more rows than the setting
``TAGIFAI_OPTIMIZE_SAMPLE_ROWS`` (:func:`sample_rows_setting`, default :data:`DEFAULT_SAMPLE_ROWS`; 0 or
"off": never), the study sees a stratified sample of that many of them (:func:`stratified_sample`: by
label, seeded by ``base_args.seed``, the same rows whatever the order of the data), in a study of its own
(``<study_name>-sample<rows>``). Every trial then costs about the same whatever the size of the data;
:func:`tagifai.train.train` fits the chosen arguments on all the rows. The study's user attributes, the
MLflow run's tags, the summary's ``search`` and the chosen trial's reason say which rows the trials saw.

A trial is an :class:`Objective` call (data, folds, base arguments and a tracker); it logs to a
:class:`~tagifai.tracking.Tracker`: MLflow when a tracking URI or an experiment is given, else nothing.

optuna, mlflow and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import split
from tagifai.model import MODELS, TagifaiModel, TrainArgs, make_embedder
from tagifai.parallel import FoldPool
from tagifai.seeds import sqlite_from_template
from tagifai.tracking import NullTracker, Tracker, tracker_for
from tagifai.train import fold_fit_bytes, labeled_frame

#: The setting of the search sample: the most train + validation rows the trials see (see
#: :func:`sample_rows_setting`). The field ``optimize_sample_rows`` of :class:`tagifai.config.Settings`
#: declares it (docs/settings.md) and accepts the same values (a test keeps them in step); it is read here,
#: from the environment, when a study starts.
SAMPLE_ROWS_ENV = "TAGIFAI_OPTIMIZE_SAMPLE_ROWS"
#: Its default, from benchmarks/mlops.py (benchmarks/results/mlops.md): the optimize step's 20 trials took
#: 29 minutes on all 8,000 train + validation rows of 10k rows, 9 minutes on a sample of 5,000 and 4 on
#: 2,000 (of 100k rows; a shared 2-core machine): the search stays a small part of issue 13's 10 minutes
#: whatever the size. 2,000 rows are three times the rows the default arguments were chosen on.
DEFAULT_SAMPLE_ROWS = 2_000


def sample_rows_setting(environ: dict[str, str] | None = None) -> int:
    """``TAGIFAI_OPTIMIZE_SAMPLE_ROWS`` of ``environ`` (default ``os.environ``): the most train + validation
    rows the trials of a study see; 0 means all of them ("0", "off", "none" or "all"); unset or empty:
    :data:`DEFAULT_SAMPLE_ROWS`. Anything else is a ValueError naming the variable."""
    raw = (os.environ if environ is None else environ).get(SAMPLE_ROWS_ENV, "")
    value = raw.strip().lower().replace("_", "")
    if not value:
        return DEFAULT_SAMPLE_ROWS
    if value in ("off", "none", "all"):
        return 0
    try:
        rows = int(value)
    except ValueError:
        rows = -1
    if rows < 0:
        raise ValueError(f"{SAMPLE_ROWS_ENV}={raw!r}: expected a number of rows, or 0 / off for all of them")
    return rows


def _allocate(counts: pd.Series, n: int, min_per_class: int) -> pd.Series:
    """Rows to take of each class (``counts``): ``min(its rows, min_per_class)`` for the classes whose
    share of ``n`` is smaller, the rest of ``n`` shared among the others in proportion to their size
    (largest remainder, ties in label order). ``n`` in all, or the minimums when they alone take more."""
    floor = np.minimum(counts, max(0, int(min_per_class)))
    fixed = pd.Series(False, index=counts.index)
    while True:
        free = counts[~fixed]
        if free.empty:
            return floor
        rest = max(0, n - int(floor[fixed].sum()))
        exact = free.astype(float) * rest / int(free.sum())
        quota = np.floor(exact).astype(int)
        by_remainder = (exact - quota).sort_values(ascending=False, kind="stable").index
        for label in by_remainder[: rest - int(quota.sum())]:
            quota[label] += 1
        low = quota < floor[free.index]
        if not low.any():
            return pd.concat([floor[fixed], np.minimum(quota, free)]).reindex(counts.index)
        fixed[low[low].index] = True


def stratified_sample(
    frame: pd.DataFrame, n: int, seed: int, by: str = "label", key: str = "text", min_per_class: int = 1
) -> pd.DataFrame:
    """``n`` rows of ``frame``, each class of ``by`` in its share (at least ``min(its rows,
    min_per_class)``), or ``frame`` itself when it has at most ``n`` rows or ``n`` is 0.

    Within a class the rows taken are those with the smallest seeded hash of ``key`` (ties: the first
    row), so the sample depends on the rows and ``seed`` only, never on their order, and most of it stays
    when rows are added. The rows keep their order in ``frame``."""
    if n <= 0 or len(frame) <= n:
        return frame
    codes, classes = pd.factorize(frame[by].astype(str), sort=True)
    counts = pd.Series(np.bincount(codes, minlength=len(classes)), index=classes)
    quota = _allocate(counts, int(n), min_per_class)
    hash_key = f"{int(seed) % 10**16:016d}"  # pandas' hash key: 16 characters
    source = frame[key] if key in frame.columns else pd.Series(np.arange(len(frame)), index=frame.index)
    hashes = pd.util.hash_pandas_object(source.astype(str), index=False, hash_key=hash_key).to_numpy()
    order = np.lexsort((np.arange(len(frame)), hashes, codes))  # by class, then hash, then position
    starts = np.searchsorted(codes[order], np.arange(len(classes)), side="left")
    taken = np.concatenate([order[start : start + int(q)] for start, q in zip(starts, quota.to_numpy(), strict=True)])
    return frame.iloc[np.sort(taken)]


#: Bounds of the search space (see :func:`suggest_params`).
SEARCH_SPACE: dict[str, Any] = {
    "model": MODELS,
    "analyzer": ("word", "char", "char_wb"),
    "ngram_max_word": (1, 3),
    "ngram_min_char": (1, 3),
    "ngram_max_char": (3, 6),
    "word_ngram_max": (0, 2),
    "sublinear_tf": (True, False),
    "class_weight": (None, "balanced"),
    "loss": ("log_loss", "modified_huber", "hinge"),
    "alpha": (1e-6, 1e-3),
    "learning_rate": (1e-2, 1.0),
    "power_t": (0.05, 0.5),
    "C": (0.1, 100.0),
    "nb_alpha": (0.01, 1.0),
    "embedding": ("none", "minilm"),
    "embedding_weight": (0.5, 2.0),
}


def model_families(models: Any, base_args: TrainArgs) -> tuple[str, ...]:
    """The model families a study searches: ``models`` (names, or one comma-separated string) or, when
    empty, ``base_args.model`` alone. Unknown names are a ValueError naming them."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",")]
    families = tuple(dict.fromkeys(m for m in (models or ()) if m)) or (base_args.model,)
    unknown = [m for m in families if m not in MODELS]
    if unknown:
        raise ValueError(
            f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(MODELS)}"
        )
    return families


def suggest_params(trial: Any, base_args: TrainArgs, models: Any = None) -> dict[str, Any]:
    """Sample training arguments for one trial (a dict of TrainArgs fields).

    Model family: with more than one of ``models`` (see :func:`model_families`), ``model`` is a
    categorical of them and each family's own parameters below are conditional on it; otherwise the
    family is ``base_args.model`` and ``model`` is not a parameter (the space of earlier studies).

    Features (every model): ``analyzer`` in word/char/char_wb; for word, ``ngram_max`` 1-3; for
    char/char_wb, ``ngram_min`` 1-3, ``ngram_max`` 3-6 and ``word_ngram_max`` 0-2 (word n-grams beside
    the character ones); ``sublinear_tf``; ``class_weight`` None/balanced. By family: "sgd" samples
    ``loss`` (log_loss, modified_huber, hinge), ``alpha`` (1e-6 to 1e-3, log) and, with the
    invscaling/constant/adaptive schedules, ``learning_rate`` (eta0, 1e-2 to 1, log) and ``power_t``
    (0.05-0.5) as in the course; "logreg"/"linear_svc" sample ``C`` (0.1-100, log); "complement_nb"
    samples ``nb_alpha`` (0.01-1, log) and has no embedding (it needs non-negative features). Every
    other family also samples ``embedding`` (none or minilm: the sentence embedding beside the TF-IDF
    columns) and, with an embedding, ``embedding_weight`` (0.5-2, log).
    """
    s = SEARCH_SPACE
    families = model_families(models, base_args)
    params: dict[str, Any] = {}
    if len(families) > 1:
        model = params["model"] = trial.suggest_categorical("model", list(families))
    else:
        model = families[0]
        if model != base_args.model:
            params["model"] = model
    params["analyzer"] = trial.suggest_categorical("analyzer", list(s["analyzer"]))
    if params["analyzer"] == "word":
        params["ngram_max"] = trial.suggest_int("ngram_max", *s["ngram_max_word"])
    else:
        params["ngram_min"] = trial.suggest_int("ngram_min", *s["ngram_min_char"])
        params["ngram_max"] = trial.suggest_int("ngram_max_char", *s["ngram_max_char"])
        params["word_ngram_max"] = trial.suggest_int("word_ngram_max", *s["word_ngram_max"])
    params["sublinear_tf"] = trial.suggest_categorical("sublinear_tf", list(s["sublinear_tf"]))
    params["class_weight"] = trial.suggest_categorical("class_weight", list(s["class_weight"]))
    if model == "sgd":
        params["loss"] = trial.suggest_categorical("loss", list(s["loss"]))
        params["alpha"] = trial.suggest_float("alpha", *s["alpha"], log=True)
        if base_args.lr_schedule != "optimal":
            params["learning_rate"] = trial.suggest_float("learning_rate", *s["learning_rate"], log=True)
            params["power_t"] = trial.suggest_float("power_t", *s["power_t"])
    elif model in ("logreg", "linear_svc"):
        params["C"] = trial.suggest_float("C", *s["C"], log=True)
    elif model == "complement_nb":
        params["nb_alpha"] = trial.suggest_float("nb_alpha", *s["nb_alpha"], log=True)
    if model != "complement_nb":
        params["embedding"] = trial.suggest_categorical("embedding", list(s["embedding"]))
        if params["embedding"] != "none":
            params["embedding_weight"] = trial.suggest_float("embedding_weight", *s["embedding_weight"], log=True)
    return params


def params_to_args(base_args: TrainArgs, params: dict[str, Any]) -> TrainArgs:
    """TrainArgs from a trial's Optuna params (the names :func:`suggest_params` uses) over ``base_args``."""
    changes = dict(params)
    if "ngram_max_char" in changes:
        changes["ngram_max"] = changes.pop("ngram_max_char")
    if changes.get("model", base_args.model) == "complement_nb":
        changes.setdefault("embedding", "none")  # not a parameter of that family: it needs non-negative features
    return base_args.replace(**changes)


def _trial_params_of(args: TrainArgs, models: Any = None) -> dict[str, Any]:
    """The Optuna params that reproduce ``args`` (to enqueue the base arguments as the first trial)."""
    params: dict[str, Any] = {"model": args.model} if len(model_families(models, args)) > 1 else {}
    params["analyzer"] = args.analyzer
    if args.analyzer == "word":
        params["ngram_max"] = args.ngram_max
    else:
        params.update(ngram_min=args.ngram_min, ngram_max_char=args.ngram_max, word_ngram_max=args.word_ngram_max)
    params.update(sublinear_tf=args.sublinear_tf, class_weight=args.class_weight)
    if args.model == "sgd":
        params.update(loss=args.loss, alpha=args.alpha)
        if args.lr_schedule != "optimal":
            params.update(learning_rate=args.learning_rate, power_t=args.power_t)
    elif args.model in ("logreg", "linear_svc"):
        params["C"] = args.C
    elif args.model == "complement_nb":
        params["nb_alpha"] = args.nb_alpha
    if args.model != "complement_nb":
        params["embedding"] = args.embedding
        if args.embedding != "none":
            params["embedding_weight"] = args.embedding_weight
    return params


def _in_space(params: dict[str, Any], families: tuple[str, ...] | None = None) -> bool:
    s = SEARCH_SPACE
    if families is not None and "model" in params and params["model"] not in families:
        return False
    ranges = {
        "ngram_min": s["ngram_min_char"],
        "ngram_max_char": s["ngram_max_char"],
        "word_ngram_max": s["word_ngram_max"],
        "alpha": s["alpha"],
        "learning_rate": s["learning_rate"],
        "power_t": s["power_t"],
        "C": s["C"],
        "nb_alpha": s["nb_alpha"],
        "embedding_weight": s["embedding_weight"],
    }
    if params.get("embedding", "none") not in s["embedding"]:
        return False
    if params["analyzer"] == "word" and not s["ngram_max_word"][0] <= params["ngram_max"] <= s["ngram_max_word"][1]:
        return False
    return all(lo <= params[k] <= hi for k, (lo, hi) in ranges.items() if k in params)


def _storage(storage: str | Any | None, heartbeat_interval: int | None):
    """An RDBStorage for a URL (sqlite: parent folder created, lock timeout, heartbeat), else as given."""
    if not isinstance(storage, str):
        return storage
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if storage.startswith("sqlite:///"):
        # the file's folder, and a new storage's tables copied from an empty one of this Optuna version (~1 s less)
        sqlite_from_template(storage, "optuna", optuna.__version__, _create_optuna_tables)
        engine_kwargs["connect_args"] = {"timeout": 60}
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    if heartbeat_interval:
        # A trial whose process died stops beating and is marked FAIL on the next run, which then
        # runs a replacement (FAIL trials do not count towards num_trials).
        kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=3 * heartbeat_interval)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
        return optuna.storages.RDBStorage(storage, **kwargs)


def _create_optuna_tables(url: str) -> None:
    """Optuna's tables and schema version in a new database, as RDBStorage makes them (no study)."""
    import optuna

    optuna.storages.RDBStorage(url).engine.dispose()


def search_facts(dev: pd.DataFrame, dev_total: int, limit: int, seed: int) -> dict[str, Any]:
    """What the trials of a study see: ``search_rows`` of the ``dev_rows`` train + validation rows
    (``sampled`` when fewer), the ``search_sample_setting`` and seed, rows per label and a sentence."""
    sampled = len(dev) < dev_total
    description = (
        f"a stratified sample of {len(dev):,} of the {dev_total:,} train + validation rows (by label, seed {seed}; "
        f"{SAMPLE_ROWS_ENV}={limit})"
        if sampled
        else f"all {dev_total:,} train + validation rows"
    )
    return {
        "sampled": sampled,
        "search_rows": len(dev),
        "dev_rows": int(dev_total),
        "search_sample_setting": int(limit),
        "search_sample_seed": int(seed) if sampled else None,
        "per_label": {str(k): int(v) for k, v in dev["label"].astype(str).value_counts().sort_index().items()},
        "description": description,
    }


def _summary(
    study: Any,
    new_trials: int,
    cv_folds: int,
    seconds: float,
    families: tuple[str, ...] = (),
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    rows = (
        f"a stratified sample of {search['search_rows']} of the {search['dev_rows']} rows of train + val"
        if search and search["sampled"]
        else "train + val"
    )
    return {
        "study_name": study.study_name,
        "direction": "maximize",
        "metric": f"mean weighted f1 over {cv_folds} stratified folds of {rows}",
        "cv_folds": cv_folds,
        "model_families": list(families),
        "search": search,
        "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "new_trials": new_trials,
        "seconds": round(seconds, 3),
        "best_trial": best.number if best else None,
        "best_value": float(best.value) if best else None,
        "best_params": dict(best.params) if best else None,
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": None if t.value is None else float(t.value),
                "params": dict(t.params),
                "intermediate": {int(k): float(v) for k, v in t.intermediate_values.items()},
            }
            for t in trials
        ],
    }


def fold_scores(intermediate: dict[int, float]) -> list[float]:
    """Per-fold scores from a trial's intermediate values (the running mean after each fold)."""
    means = [float(v) for _, v in sorted((int(k), v) for k, v in intermediate.items())]
    return [(i + 1) * m - i * (means[i - 1] if i else 0.0) for i, m in enumerate(means)]


def choose_trial(summary: dict[str, Any], base_params: dict[str, Any], margin_se: float) -> dict[str, Any]:
    """Take the best trial only when it beats the base arguments' trial by more than ``margin_se``
    standard errors of their paired per-fold difference (the same folds); otherwise keep the base.

    The best of many trials scored on the same ~600 rows is optimistic: picked on cross-validation
    noise, it often does worse on new data than the defaults it "beat" by a hair. ``margin_se`` 0
    always takes the best trial; with no trial of the base arguments to compare with, so does this.
    Returns ``{"trial", "value", "params", "kept_base", "delta", "se", "margin_se", "reason"}``.
    """
    trials = {t["number"]: t for t in summary["trials"]}
    best = trials[summary["best_trial"]]
    base = next((t for t in summary["trials"] if t["state"] == "COMPLETE" and t["params"] == base_params), None)
    chosen = {
        "trial": best["number"],
        "value": best["value"],
        "params": best["params"],
        "kept_base": False,
        "delta": None,
        "se": None,
        "margin_se": margin_se,
    }
    if base is None:
        return {**chosen, "reason": "no complete trial of the base arguments: the best trial"}
    if base["number"] == best["number"]:
        return {**chosen, "kept_base": True, "delta": 0.0, "reason": "the base arguments are the best trial"}
    a, b = fold_scores(best["intermediate"]), fold_scores(base["intermediate"])
    diffs = [x - y for x, y in zip(a, b, strict=False)]  # the same folds: as long as each other
    delta = float(np.mean(diffs))
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    chosen.update(delta=delta, se=se)
    if margin_se > 0 and delta <= margin_se * se:
        return {
            **chosen,
            "trial": base["number"],
            "value": base["value"],
            "params": base["params"],
            "kept_base": True,
            "reason": f"best trial {best['number']} beats the base arguments by {delta:+.4f} ± {se:.4f} "
            f"(paired over {len(diffs)} folds), not more than {margin_se:g} standard error(s)",
        }
    return {
        **chosen,
        "reason": f"best trial {best['number']} beats the base arguments by {delta:+.4f} ± {se:.4f} "
        f"(paired over {len(diffs)} folds)",
    }


def dev_rows(df: pd.DataFrame, base_args: TrainArgs) -> pd.DataFrame:
    """Train + validation of ``base_args``' split of the labeled ``df`` (its test split dropped)."""
    data = labeled_frame(df, base_args)
    splits = split(data, val_size=base_args.val_size, test_size=base_args.test_size, seed=base_args.seed)
    return pd.concat([splits.train, splits.val]) if len(splits.val) else splits.train  # never the test split


def dev_folds(
    df: pd.DataFrame, base_args: TrainArgs, cv_folds: int, sample_rows: int = 0
) -> tuple[pd.DataFrame, list[tuple[Any, Any]]]:
    """The rows a study may see and their folds: :func:`dev_rows` of ``df`` (of them a
    :func:`stratified_sample` of ``sample_rows``, seeded by ``base_args.seed``, when there are more; 0:
    all), and ``cv_folds`` stratified (train, held-out) row positions of them (fewer when a class has fewer
    rows, at least 2), shuffled with ``base_args.seed``."""
    dev = dev_rows(df, base_args)
    if sample_rows:
        dev = stratified_sample(dev, sample_rows, base_args.seed, min_per_class=cv_folds)
    return dev, _folds(dev, cv_folds, base_args.seed)


def _folds(dev: pd.DataFrame, cv_folds: int, seed: int) -> list[tuple[Any, Any]]:
    from sklearn.model_selection import StratifiedKFold

    labels = dev["label"].astype(str)
    folds_n = max(2, min(int(cv_folds), int(labels.value_counts().min())))
    return list(StratifiedKFold(folds_n, shuffle=True, random_state=seed).split(dev, labels))


@dataclass(eq=False)  # compared by identity (it holds a DataFrame)
class Objective:
    """What Optuna maximises: one trial's mean weighted f1 over ``folds`` of ``dev`` (a callable for
    :meth:`optuna.study.Study.optimize`).

    A call samples the trial's arguments over ``base_args`` (:func:`suggest_params` in the space of
    ``families``), fits one model per fold and scores its arg-max predictions on the held-out rows (the
    threshold is chosen later, by training), reports the running mean after each fold (step = fold
    index) and raises :class:`optuna.TrialPruned` when the pruner says so. Each trial is a nested run
    ``<study_name>-trial-<number>`` of ``tracker`` with tags ``optuna_study``/``optuna_trial``/``state``,
    the trial's params and ``val_f1`` per step. One embedder per embedding serves every call: each text of
    ``dev`` is encoded once.

    ``pool``: a :class:`~tagifai.parallel.FoldPool` opened over :func:`fold_state` of ``dev`` and ``folds`` fits
    the folds in its worker processes (the embedding's vectors of every ``dev`` text, encoded here once, go to
    them as :class:`~tagifai.embeddings.KnownVectors`); None fits them here, one after the other. The scores,
    reports and pruning are the same either way.
    """

    dev: pd.DataFrame
    folds: list[tuple[Any, Any]]
    base_args: TrainArgs
    families: tuple[str, ...]
    study_name: str
    tracker: Tracker = field(default_factory=NullTracker)
    embedders: dict[str, Any] = field(default_factory=dict, repr=False)
    pool: Any = None

    def embedder_for(self, args: TrainArgs) -> Any:
        """The shared embedder of ``args.embedding`` (None without an embedding), every ``dev`` text encoded; with
        a parallel pool, the :class:`~tagifai.embeddings.KnownVectors` of them."""
        if args.embedding == "none":
            return None
        if args.embedding not in self.embedders:
            from tagifai.embeddings import for_folds
            from tagifai.model import to_inputs

            workers = self.pool is not None and self.pool.parallel
            self.embedders[args.embedding] = for_folds(make_embedder(args), to_inputs(self.dev)[1], workers)
        return self.embedders[args.embedding]

    def warm(self) -> threading.Thread:
        """Start encoding ``dev`` for the base arguments' embedding in a thread (the first trial, the base
        arguments, needs it); join the thread before the trials. The encoder releases the GIL, so it runs beside
        the caller's imports and database set-up. A failure is left for the trial to meet (and raise) again."""

        def encode() -> None:
            if self.base_args.embedding != "none" and self.base_args.model != "complement_nb":
                with contextlib.suppress(Exception):
                    self.embedder_for(self.base_args)

        thread = threading.Thread(target=encode, name="tagifai-warm-encoder")
        thread.start()
        return thread

    def __call__(self, trial: Any) -> float:
        import optuna

        args = params_to_args(self.base_args, suggest_params(trial, self.base_args, self.families))
        with self.tracker.run(f"{self.study_name}-trial-{trial.number}", nested=True):
            self.tracker.set_tags({"optuna_study": self.study_name, "optuna_trial": str(trial.number)})
            self.tracker.log_params({k: str(v) for k, v in trial.params.items()})
            scores, pruned = self.cross_validate(trial, args)
            self.tracker.set_tags({"state": "PRUNED" if pruned else "COMPLETE"})
        value = float(np.mean(scores))
        if pruned:
            raise optuna.TrialPruned(f"pruned at fold {len(scores) - 1} with running mean f1 {value:.4f}")
        if math.isnan(value):
            raise ValueError("objective is NaN")
        return value

    def cross_validate(self, trial: Any, args: TrainArgs) -> tuple[list[float], bool]:
        """The f1 of each fold scored before the trial was pruned, and whether it was."""
        scores: list[float] = []
        embedder = self.embedder_for(args)
        items = [(args, step, embedder) for step in range(len(self.folds))]
        if self.pool is None:
            results = (fold_f1(fold_state(self.dev, self.folds), item) for item in items)
        else:
            results = self.pool.ordered(fold_f1, items)
        try:
            for step, score in enumerate(results):
                scores.append(score)
                running = float(np.mean(scores))
                trial.report(running, step)
                self.tracker.log_metric("val_f1", running, step=step)
                if trial.should_prune():
                    return scores, True
        finally:
            results.close()  # a pruned trial: the folds not started are not run
        return scores, False


def fold_state(dev: pd.DataFrame, folds: list[tuple[Any, Any]]) -> dict[str, Any]:
    """What :func:`fold_f1` reads: the rows and their folds (the state of a :class:`~tagifai.parallel.FoldPool`)."""
    return {"dev": dev, "folds": folds}


def fold_f1(state: dict[str, Any], item: tuple[TrainArgs, int, Any]) -> float:
    """The weighted f1 of the arg-max predictions on fold ``step``'s held-out rows of a model fitted with ``args``
    (and ``embedder``) on the fold's other rows; ``item`` is ``(args, step, embedder)``."""
    from tagifai.evaluate import weighted_scores

    args, step, embedder = item
    train_idx, held_idx = state["folds"][step]
    part, held = state["dev"].iloc[train_idx], state["dev"].iloc[held_idx]
    model = TagifaiModel(args, embedder=embedder).fit(part, part["label"])
    return weighted_scores(held["label"].tolist(), model.predict(held, threshold=0.0).tolist())["f1"]


class TrialProgress:
    """An Optuna callback: after each trial, one progress line on stdout, flushed, that ``tagifai run``
    shows live (the line contract: ``tagifai_cli/progress.py``)::

        tagifai-progress optimize trial <finished>/<num_trials> best_f1=<best value>

    ``finished``: the study's finished (complete + pruned) trials, earlier calls' included, out of the
    ``num_trials`` it should hold; ``best_f1`` is left out until a trial has completed."""

    def __init__(self, num_trials: int, states: tuple[Any, ...], stream: Any = None):
        self.num_trials = num_trials
        self.states = states
        self.stream = stream

    def __call__(self, study: Any, trial: Any) -> None:
        import sys

        done = len(study.get_trials(deepcopy=False, states=self.states))
        line = f"tagifai-progress optimize trial {done}/{self.num_trials}"
        try:
            line += f" best_f1={study.best_value:.4f}"
        except ValueError:  # no completed trial yet
            pass
        print(line, file=self.stream or sys.stdout, flush=True)


def _load_study(
    storage: str | Any | None,
    study_name: str,
    heartbeat_interval: int | None,
    pruner_startup_trials: int,
    pruner_warmup_steps: int,
):
    """The study ``study_name`` of ``storage`` (created when missing), maximising, with a median pruner."""
    import optuna

    return optuna.create_study(
        storage=_storage(storage, heartbeat_interval),
        study_name=study_name,
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_steps),
        load_if_exists=True,
    )


def _log_study(tracker: Tracker, study_name: str, summary: dict[str, Any]) -> None:
    """The study's run: its name, the best and the chosen trial, the summary as ``study_summary.json``."""
    tracker.set_tags({"optuna_study": study_name})
    search = summary.get("search")
    if search:
        keys = ("search_rows", "dev_rows", "search_sample_setting", "search_sample_seed")
        tags = {k: str(search[k]) for k in keys if search[k] is not None}
        tracker.set_tags({**tags, "search_sampled": str(search["sampled"]).lower()})
    if summary["best_params"] is not None:
        tracker.log_params({f"best_{k}": str(v) for k, v in summary["best_params"].items()})
        tracker.log_metric("best_val_f1", summary["best_value"])
        tracker.log_metric("chosen_val_f1", summary["chosen"]["value"])
        tracker.set_tags(
            {
                "chosen_trial": str(summary["chosen"]["trial"]),
                "kept_base_args": str(summary["chosen"]["kept_base"]).lower(),
            }
        )
    tracker.log_dict(summary, "study_summary.json")


def optimize(
    df: pd.DataFrame,
    num_trials: int = 20,
    storage: str | Any | None = None,
    study_name: str = "tagifai",
    seed: int = 42,
    base_args: TrainArgs | None = None,
    experiment_name: str | None = None,
    tracking_uri: str | None = None,
    artifact_root: str | Path | None = None,
    timeout: float | None = None,
    cv_folds: int = 5,
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 0,
    heartbeat_interval: int | None = 60,
    models: Any = None,
    margin_se: float = 2.0,
    sample_rows: int | None = None,
    cv_workers: int | None = None,
) -> tuple[TrainArgs, float, dict[str, Any]]:
    """Search training arguments; returns ``(best_args, best_value, summary)``.

    - ``df``: labeled projects (prepared here with ``base_args``' label settings); the test split of
      ``base_args`` (``test_size``, ``seed``) is dropped before anything else.
    - ``num_trials``: finished (complete + pruned) trials the study should hold; with an existing
      study of that name in ``storage`` only the missing ones run (resumable, idempotent).
      ``timeout`` (seconds) bounds this call. A new study first runs ``base_args`` itself.
    - ``storage``: Optuna RDB URL (``sqlite:///...``) or storage object; None keeps the study in memory.
    - ``seed``: the TPE sampler's seed (``seed + finished trials`` when resuming).
    - ``experiment_name``/``tracking_uri``: when either is given, the study is an MLflow run with one
      nested child run per trial (params, ``val_f1`` per fold step and final, state tag).
    - ``models``: the model families to search (names or "linear_svc,logreg,sgd"; see
      :func:`model_families`); empty means ``base_args.model`` only.
    - Pruning: :class:`optuna.pruners.MedianPruner` (``pruner_startup_trials``,
      ``pruner_warmup_steps``) on the running mean after each of ``cv_folds`` folds.

    - ``margin_se``: the best trial replaces ``base_args`` only when it beats their trial (the first
      of every study) by more than this many standard errors of the paired per-fold difference
      (:func:`choose_trial`; 0 takes the best trial whatever the margin).
    - ``sample_rows``: when train + validation hold more rows, the trials see a
      :func:`stratified_sample` of this many of them (by label, seeded by ``base_args.seed``), in the
      study ``<study_name>-sample<sample_rows>``; 0: every row; None: :func:`sample_rows_setting`
      (``TAGIFAI_OPTIMIZE_SAMPLE_ROWS``). The study's user attributes (``search_rows``, ``dev_rows``,
      ``search_sample_seed``), the MLflow run's tags of the same names, ``summary["search"]`` and the
      chosen trial's reason record it. Training fits the chosen arguments on every row.
    - ``cv_workers``: processes fitting a trial's folds side by side (:class:`~tagifai.parallel.FoldPool`; the
      same scores and pruning as one process); None: :func:`tagifai.parallel.workers_setting`
      (``TAGIFAI_CV_WORKERS``, default the CPUs this process may use).

    ``best_value`` is the chosen trial's mean cross-validated weighted f1; ``best_args`` is ``base_args``
    with the chosen trial's params (``summary["chosen"]`` says which and why; ``summary["best_*"]``
    stay the study's best trial). ``summary`` is JSON-serialisable (counts, best trial, every trial).
    """
    import optuna
    from optuna.trial import TrialState

    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    base_args = base_args if base_args is not None else TrainArgs()
    families = model_families(models, base_args)
    if len(families) == 1:  # one family: it is the base (no "model" parameter, as in earlier studies)
        base_args = base_args.replace(model=families[0])
    limit = sample_rows_setting() if sample_rows is None else int(sample_rows)
    if limit < 0:
        raise ValueError(f"sample_rows must be >= 0 (0: every row), got {sample_rows}")
    start = time.perf_counter()
    every = dev_rows(df, base_args)
    dev = stratified_sample(every, limit, base_args.seed, min_per_class=cv_folds) if limit else every
    folds = _folds(dev, cv_folds, base_args.seed)
    search = search_facts(dev, len(every), limit, base_args.seed)
    if search["sampled"]:  # its own study: trials scored on other rows are not comparable
        study_name = f"{study_name}-sample{limit}"
        print(f"optimize: {search['description']}", flush=True)
    # The fold workers fork here, before this process opens the study's database, MLflow or the encoder.
    with FoldPool(fold_state(dev, folds), cv_workers, len(folds), bytes_per_worker=fold_fit_bytes(folds)) as pool:
        objective = Objective(dev, folds, base_args, families, study_name, pool=pool)
        warming = objective.warm()  # the encoder runs while this thread opens the study and MLflow
        study = _load_study(storage, study_name, heartbeat_interval, pruner_startup_trials, pruner_warmup_steps)
        for key in ("search_rows", "dev_rows", "search_sample_seed", "search_sample_setting"):
            if study.user_attrs.get(key) != search[key]:
                study.set_user_attr(key, search[key])
        finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
        done = len(study.get_trials(deepcopy=False, states=finished_states))
        study.sampler = optuna.samplers.TPESampler(seed=seed + done)
        base_params = _trial_params_of(base_args, families)  # the first trial of a new study, and the yardstick
        if not study.get_trials(deepcopy=False) and _in_space(base_params, families):
            study.enqueue_trial(base_params)

        objective.tracker = tracker = tracker_for(tracking_uri, experiment_name, artifact_root)
        warming.join()
        remaining = max(0, num_trials - done)
        with tracker.run(f"optimize-{study_name}") if remaining else contextlib.nullcontext():
            if remaining:
                callbacks = [
                    optuna.study.MaxTrialsCallback(num_trials, states=finished_states),
                    TrialProgress(num_trials, finished_states),  # the live progress of `tagifai run`
                ]
                study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks, catch=())
            summary = _summary(
                study,
                len(study.get_trials(deepcopy=False, states=finished_states)) - done,
                len(folds),
                time.perf_counter() - start,
                families,
                search,
            )
            if summary["best_params"] is not None:
                summary["chosen"] = choose_trial(summary, base_params, margin_se)
                if search["sampled"]:
                    summary["chosen"]["reason"] += f"; the trials saw {search['description']}"
            if remaining:
                _log_study(tracker, study_name, summary)
        if summary["best_params"] is None:
            raise RuntimeError(f"study {study_name!r} has no completed trial ({summary['n_trials']} trials)")
        best_args = params_to_args(base_args, summary["chosen"]["params"])
        summary["best_args"] = best_args.to_dict()
        return best_args, float(summary["chosen"]["value"]), summary
