"""Prediction benchmark: batch rows/s, single-prediction latency, the CLI's cold start, and the encoder
against its physical limit (issue 13).

Two models are trained in this process on the vendored data (data/madewithml, DATA_DIR overrides) with
:func:`tagifai.train.train`: the default (TF-IDF + the MiniLM-L6 sentence embedding, :mod:`tagifai.embeddings`)
and the same with ``TrainArgs(embedding="none")`` (TF-IDF only). Their inputs are synthetic projects from
benchmarks/synth.py: every text is new, so the embedder's memo never answers (a repeated text is encoded
once per embedder), and the persistent embedding store is off (``TAGIFAI_EMBEDDING_CACHE=off``). Measured, in one run:

- **batch**: :func:`tagifai.predict.predict` on ``--embedding-rows`` rows (default model) and
  ``--tfidf-rows`` rows (TF-IDF only), ``--runs`` times each on fresh rows: rows/s, median of the runs; each
  model's time split into cleaning the text, TF-IDF, the encoder and the classifier;
- **TF-IDF only, before and after**: ``--compare-runs`` batches of ``--tfidf-rows`` rows through the path as it was
  before issue 13's text work (the regex cleaning, scikit-learn's own ``TfidfVectorizer`` and
  ``CalibratedClassifierCV.predict_proba``) and through ``predict``, in turn: the ratio of rows/s and whether the
  probabilities are the same floats;
- **the encoder alone**: :meth:`SentenceEmbedder.encode` on ``--encode-rows`` new texts with its default batch
  (16 texts sorted by length) and 2 ONNX Runtime threads, then batch sizes 1 and 64 and 1 thread: texts/s,
  with the tokens per text and the padding the batching adds;
- **single prediction, warm**: ``--latency-calls`` calls of ``predict`` on one new row each after a warm-up:
  p50, p99 and mean milliseconds, for each model;
- **the CLI from a cold start**: a quick training and registration (:func:`tagifai.workflows.train_and_register`
  and :func:`evaluate_and_promote`, the champion, which writes its serving copy) into a temporary state folder,
  then ``tagifai predict --home STATE --title ... --description ...`` ``--cli-runs`` times (median): from the
  serving copy (no MLflow) and, in turn, through MLflow (``--model-uri models:/tagifai@champion``, the path
  before the serving copy), beside ``python -c pass`` and the imports of each path;
- **the physical limit of the encoder**: FLOPs per token from the architecture of all-MiniLM-L6-v2 (6 layers,
  384 wide, FFN 1536: 10.6M weights in matrix products; the 11.9M of its embedding tables are look-ups, not
  arithmetic), the kernels ONNX Runtime actually runs (profiled once: float32 ``MatMul``; the package stores
  int8 weights that are cast to float32 when the session loads), the CPU's SIMD flags and clock, and a
  float32 GEMM measured with numpy on the same cores.

Written to benchmarks/results/predict.json and predict.md, each figure with its command.

    make benchmark-predict                 # the defaults (make bench too)
    python benchmarks/predict.py --embedding-rows 1000 --tfidf-rows 10000 --runs 2 --cli-runs 3
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import synth  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DATA_DIR,
    benchmark_command,
    machine,
    machine_line,
    percentile,
    summary,
    tagifai_command,
    tagifai_env,
    time_process,
    write_results,
)

#: What ``tagifai predict`` imports through MLflow (the path before the serving copy, and its fallback): MLflow and
#: its SQL store to find the champion, scikit-learn to unpickle the model.
IMPORTS = (
    "import pandas, sklearn.pipeline, mlflow.sklearn, mlflow.store.tracking.sqlalchemy_store, "
    "tagifai_cli.main, tagifai.predict, tagifai.tracking"
)
#: What it imports from the champion's serving copy in its compiled form (tagifai/serving.py: no MLflow, no
#: scikit-learn, SciPy or pandas): numpy, the settings and the encoder's runtime.
FAST_IMPORTS = "import tagifai_cli.main, tagifai.predict, tagifai.serving, tagifai.config, onnxruntime, tokenizers"
#: Modules the serving copy's path should not import (the probe reports those it did).
HEAVY = ("mlflow", "sklearn", "scipy", "pandas")
GOALS = {
    "embedding_rows_per_second": 600.0,
    "tfidf_rows_per_second": 20_000.0,
    "warm_p50_ms": 20.0,
    "cli_seconds": 2.0,
}

#: all-MiniLM-L6-v2 (sentence-transformers; BERT): layers, width, FFN width, vocabulary, positions.
LAYERS, HIDDEN, FFN, VOCAB, POSITIONS = 6, 384, 1536, 30522, 512
#: Multiply-adds per token in the matrix products of one layer: Q, K, V, O (4 x 384 x 384) and the FFN (2 x 384 x 1536).
LAYER_MACS = 4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN


def encoder_arithmetic(tokens: float) -> dict[str, float]:
    """Operations (2 per multiply-add) to encode one text of ``tokens`` tokens (all rows of its batch as wide)."""
    linear = LAYERS * LAYER_MACS * tokens
    attention = LAYERS * 2 * tokens * tokens * HIDDEN  # Q K^T and the weighted sum of V, every head together
    embedding_params = VOCAB * HIDDEN + POSITIONS * HIDDEN + 2 * HIDDEN
    return {
        "matmul_weights": LAYERS * LAYER_MACS,
        "embedding_table_params": embedding_params,
        "ops_per_token_linear": 2 * LAYERS * LAYER_MACS,
        "ops_per_text": 2 * (linear + attention),
        "attention_share": attention / (linear + attention),
        "naive_ops_per_token_2x_params": 2 * (LAYERS * LAYER_MACS + embedding_params),
    }


def peak_ops(m: dict[str, Any]) -> dict[str, Any]:
    """Peak operations per second of this machine's cores for float32 and int8 matrix products, from the CPU
    flags and the nominal clock (/proc/cpuinfo), with the reasoning."""
    flags = set(m.get("simd_flags") or [])
    ghz = (m.get("cpu_mhz") or 0) / 1000
    cores = m["cpus"]
    if "avx512f" in flags:
        f32_lanes, isa = 16, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        f32_lanes, isa = 8, "AVX2 + FMA"
    else:
        f32_lanes, isa = 4, "SSE"
    fma_ports = 2
    f32 = cores * fma_ports * f32_lanes * 2 * ghz * 1e9
    if "avx512_vnni" in flags:
        int8_macs, int8_how = 2 * 64, "2 x VPDPBUSD zmm (64 u8*s8 multiply-adds each) a cycle"
    elif "avx_vnni" in flags:
        int8_macs, int8_how = 2 * 32, "2 x VPDPBUSD ymm (32 multiply-adds each) a cycle"
    elif "avx2" in flags:
        int8_macs, int8_how = (
            32,
            (
                "AVX2 without VNNI: VPMADDUBSW + VPMADDWD + VPADDD per 32 u8*s8 multiply-adds, two multiply pipes: "
                "32 a cycle"
            ),
        )
    else:
        int8_macs, int8_how = 8, "SSE"
    int8 = cores * int8_macs * 2 * ghz * 1e9
    return {
        "isa": isa,
        "ghz": ghz,
        "cores": cores,
        "float32_ops": f32,
        "float32_how": f"{cores} cores x {fma_ports} FMA pipes x {f32_lanes} float32 lanes x 2 ops x {ghz:.2f} GHz",
        "int8_ops": int8,
        "int8_how": f"{cores} cores x {int8_how} x 2 ops x {ghz:.2f} GHz",
    }


def measure_gemm() -> dict[str, float]:
    """float32 GEMM operations/s with numpy's BLAS on one thread and on every core, shaped like the encoder's
    FFN on 2048 tokens: what this machine's cores deliver now (clock, load and all)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((2048, HIDDEN), dtype=np.float32)
    w = np.random.default_rng(1).random((HIDDEN, FFN), dtype=np.float32)
    out = {}
    for name, threads in (("one_thread", 1), ("all_cores", os.cpu_count() or 1)):
        with threadpool_limits(threads):
            for _ in range(3):
                a @ w
            reps, start = 20, time.perf_counter()
            for _ in range(reps):
                a @ w
            out[name] = 2 * 2048 * HIDDEN * FFN * reps / (time.perf_counter() - start)
    out["ops_per_second"] = max(out["all_cores"], out["one_thread"])
    return out


def profile_kernels(texts: list[str]) -> dict[str, float]:
    """Share of ONNX Runtime's kernel time per operator, encoding ``texts`` once with profiling on."""
    import onnxruntime as ort

    from tagifai import embeddings

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = embeddings._threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "tagifai-bench-ort")
    session = ort.InferenceSession(str(embeddings.model_path()), options, providers=["CPUExecutionProvider"])
    tok = embeddings.tokenizer(128)
    for start in range(0, len(texts), 16):
        encoded = [tok.encode(t).ids for t in texts[start : start + 16]]
        width = max(map(len, encoded))
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(encoded):
            ids[r, : len(e)], mask[r, : len(e)] = e, 1
        session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    path = session.end_profiling()
    events = json.loads(Path(path).read_text())
    Path(path).unlink(missing_ok=True)
    spent: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            spent[e["args"]["op_name"]] += e["dur"]
    total = sum(spent.values()) or 1
    return {op: us / total for op, us in spent.most_common(8)}


def token_lengths(texts: list[str]) -> np.ndarray:
    from tagifai import embeddings

    tok = embeddings.tokenizer(128)
    return np.array([len(tok.encode(t).ids) for t in texts])


def padded_tokens(lengths: np.ndarray, batch: int) -> int:
    """Tokens the encoder computes with :class:`SentenceEmbedder`'s batching: sorted by length, each batch as
    wide as its longest text."""
    ordered = np.sort(lengths, kind="stable")
    return int(sum(len(ordered[i : i + batch]) * ordered[i : i + batch].max() for i in range(0, len(ordered), batch)))


@contextlib.contextmanager
def onnx_threads(n: int):
    """The encoder's sessions with ``n`` intra-op threads (the library's choice is min(2, cores))."""
    from tagifai import embeddings

    before = embeddings._threads
    embeddings._threads = lambda: n
    try:
        yield
    finally:
        embeddings._threads = before


def raw_texts(df: pd.DataFrame) -> list[str]:
    from tagifai.data import raw_text

    return raw_text(df).tolist()


def time_encode(texts: list[str], batch: int = 16, threads: int | None = None) -> dict[str, Any]:
    """texts/s of a fresh :class:`SentenceEmbedder` (no memo) on ``texts``, its session already loaded."""
    from tagifai.embeddings import SentenceEmbedder, session

    with onnx_threads(threads) if threads else contextlib.nullcontext():
        session()  # loading the session is not encoding
        start = time.perf_counter()
        SentenceEmbedder(batch_size=batch).encode(texts)
        seconds = time.perf_counter() - start
    lengths = token_lengths(texts)
    padded = padded_tokens(lengths, batch)
    return {
        "texts": len(texts),
        "batch_size": batch,
        "threads": threads or "default",
        "seconds": seconds,
        "texts_per_second": len(texts) / seconds,
        "tokens_per_text": float(lengths.mean()),
        "padded_tokens_per_text": padded / len(texts),
        "padding_overhead": padded / lengths.sum() - 1,
    }


def time_batches(model: Any, frames: list[pd.DataFrame]) -> dict[str, Any]:
    """rows/s of :func:`tagifai.predict.predict` on each frame (new rows each)."""
    from tagifai.predict import predict

    rates, seconds = [], []
    for df in frames:
        if getattr(model, "embedder", None) is not None:
            model.embedder.clear()
        start = time.perf_counter()
        out = predict(model, df)
        seconds.append(time.perf_counter() - start)
        rates.append(len(df) / seconds[-1])
        assert len(out) == len(df)
    return {
        "rows": len(frames[0]),
        "runs": len(frames),
        "seconds": seconds,
        "rows_per_second": rates,
        "median_rows_per_second": statistics.median(rates),
    }


def split_batch(model: Any, df: pd.DataFrame) -> dict[str, float]:
    """Where one batch prediction spends its time, each part timed alone on fresh rows, as the model runs it
    (tagifai.model.TagifaiModel: cleaning into a TextBatch, the TF-IDF union without scikit-learn's re-validation,
    the encoder when the model has one, the calibrated classifier's probabilities)."""
    import scipy.sparse as sp
    from sklearn import config_context

    from tagifai.embeddings import SentenceEmbedder
    from tagifai.model import calibrated_linear_proba, to_inputs

    start = time.perf_counter()
    texts, raw = to_inputs(df[["title", "description"]])
    clean = time.perf_counter() - start
    start = time.perf_counter()
    with config_context(assume_finite=True, skip_parameter_validation=True):
        tfidf = model.features_.transform(texts)
    tfidf_s = time.perf_counter() - start
    encode, matrix = 0.0, tfidf
    if model.args.embedding != "none":
        start = time.perf_counter()
        embedder = SentenceEmbedder(model.args.embedding, batch_size=getattr(model.embedder, "batch_size", 16))
        dense = embedder.encode(raw)
        encode = time.perf_counter() - start
        matrix = sp.hstack([tfidf, sp.csr_matrix(dense * model.args.embedding_weight)], "csr")
    start = time.perf_counter()
    if calibrated_linear_proba(model.classifier_, matrix) is None:
        model.classifier_.predict_proba(matrix)
    classify = time.perf_counter() - start
    return {"clean_text": clean, "tfidf": tfidf_s, "encode": encode, "classifier": classify}


def compare_tfidf_paths(model: Any, frames: list[pd.DataFrame]) -> dict[str, Any]:
    """The TF-IDF-only model's batch prediction the way it ran before issue 13's text work, and as it runs now, in
    turn on the same rows (one process, so the load of this shared machine falls on both alike).

    Before: the cleaning as the chain of regexes (``tagifai.data.clean_text_regex``) of each row's raw text,
    scikit-learn's own ``TfidfVectorizer`` (copies of the model's, class swapped back: the same vocabulary and idf)
    and ``CalibratedClassifierCV.predict_proba``: the probabilities only, no output frame. Now: ``predict(model,
    df)``. Also checks that both give the same probabilities, bit for bit."""
    import copy

    from sklearn.feature_extraction.text import TfidfVectorizer

    from tagifai.data import clean_text_regex, raw_text
    from tagifai.predict import predict, prob_column

    reference = copy.deepcopy(model.features_)
    for part in [reference, *(p for _, p in getattr(reference, "transformer_list", []))]:
        if isinstance(part, TfidfVectorizer):
            part.__class__ = TfidfVectorizer
    prob_columns = [prob_column(c) for c in model.classes_]
    before, after, cpu_before, cpu_after, same = [], [], [], [], True
    for df in frames:
        start, cpu = time.perf_counter(), time.process_time()
        texts = [clean_text_regex(t) for t in raw_text(df)]
        expected = model.classifier_.predict_proba(reference.transform(texts))
        before.append(len(df) / (time.perf_counter() - start))
        cpu_before.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        out = predict(model, df)
        after.append(len(df) / (time.perf_counter() - start))
        cpu_after.append(time.process_time() - cpu)
        same = same and np.array_equal(out[prob_columns].to_numpy(), expected)
    return {
        "rows": len(frames[0]),
        "runs": len(frames),
        "before_rows_per_second": before,
        "after_rows_per_second": after,
        "before_cpu_seconds": cpu_before,
        "after_cpu_seconds": cpu_after,
        "ratio": statistics.median(after) / statistics.median(before),
        "cpu_ratio": statistics.median(cpu_before) / statistics.median(cpu_after),
        "identical_probabilities": bool(same),
    }


def time_single(model: Any, df: pd.DataFrame, warmup: int = 5) -> dict[str, Any]:
    """Milliseconds of ``predict`` on one new row at a time, after ``warmup`` calls."""
    from tagifai.model import to_inputs
    from tagifai.predict import predict

    rows = [df.iloc[[i]] for i in range(len(df))]
    for row in rows[:warmup]:
        predict(model, row)
    ms, encoder_ms = [], []
    embedder = getattr(model, "embedder", None)
    half = warmup + (len(rows) - warmup) // 2
    for i, row in enumerate(rows[warmup:], start=warmup):
        if embedder is not None and i >= half:  # the encoder alone (tokenizer + ONNX, batch 1) on new rows, in turn
            raw = to_inputs(row[["title", "description"]])[1]
            start = time.perf_counter()
            embedder._run(raw)
            encoder_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        predict(model, row)
        ms.append((time.perf_counter() - start) * 1000)
    out = {
        "calls": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }
    if encoder_ms:
        out["encoder_p50_ms"] = percentile(encoder_ms, 50)
        out["encoder_share"] = out["encoder_p50_ms"] / out["p50_ms"]
    return out


def register_champion(df: pd.DataFrame, home: Path) -> dict[str, Any]:
    """Train the default model, register it and make it the champion in a state folder ``home``."""
    from tagifai.config import get_settings
    from tagifai.workflows import evaluate_and_promote, train_and_register

    home = home.resolve()  # the URI `tagifai predict --home` derives, whatever this environment says
    s = get_settings(home=str(home), mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    start = time.perf_counter()
    out = train_and_register(
        df, None, 42, s.model_name, s.mlflow_tracking_uri, s.experiment_name, s.mlflow_artifact_root
    )
    gate = evaluate_and_promote(out.model_uri, out.test_data, s.model_name, s.mlflow_tracking_uri)
    if not gate.promoted:
        raise SystemExit(f"the benchmark's model was not promoted: {gate.outcome}: {gate.reason}")
    return {"model_uri": out.model_uri, "seconds": time.perf_counter() - start}


def cli_cold_start(home: Path, runs: int) -> dict[str, Any]:
    """``tagifai predict --title --description`` from a new process, beside the interpreter and its imports."""
    title, description = "Transfer learning with transformers", "Using transformers for transfer learning on text."

    def answered(out: str) -> bool:
        return bool(json.loads(out)[0]["predicted_tag"])

    python = [sys.executable, "-c"]
    predict_argv = [*tagifai_command(), "predict", "--home", str(home), "--title", title, "--description", description]
    commands = {
        "python_startup": ([*python, "pass"], None),
        "fast_imports": ([*python, FAST_IMPORTS], None),
        "imports": ([*python, IMPORTS], None),
        # the champion's serving copy (written when the evaluate step promoted it): no MLflow
        "cli_predict": (predict_argv, answered),
        # the same model through MLflow, as before the serving copy (an explicit URI skips the copy)
        "cli_predict_mlflow": ([*predict_argv, "--model-uri", "models:/tagifai@champion"], answered),
    }
    # Round-robin, one run of each command a round: the load of this shared machine changes by the minute, and
    # the ratios are what this run can tell.
    rounds: dict[str, list[float]] = {name: [] for name in commands}
    shown_commands = {}
    for _ in range(runs):
        for name, (argv, check) in commands.items():
            r = time_process(argv, 1, check=check, env=tagifai_env(TAGIFAI_EMBEDDING_CACHE="off"))
            rounds[name] += r["seconds"]
            shown_commands[name] = r["command"]
    results = {name: summary(seconds, shown_commands[name]) for name, seconds in rounds.items()}
    for r in results.values():
        r["command"] = r["command"].replace(str(home), "STATE")
    probe = (
        "import sys; from tagifai_cli.main import main; "
        f"main({predict_argv[len(tagifai_command()) :]!r}); "
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = tagifai_env(TAGIFAI_EMBEDDING_CACHE="off")
    done = subprocess.run([*python, probe], capture_output=True, text=True, env=env, cwd=ROOT)
    heavy = next((line[6:] for line in done.stdout.splitlines() if line.startswith("HEAVY=")), "")
    results["fast_path_heavy_imports"] = [m for m in heavy.split(",") if m]
    results["fast_path_imports_mlflow"] = "mlflow" in results["fast_path_heavy_imports"]
    results["fast_path_stderr"] = done.stderr.strip()[-500:]
    results["ratio_mlflow_over_fast"] = results["cli_predict_mlflow"]["median"] / results["cli_predict"]["median"]
    return results


def cli_rows(c: dict[str, Any]) -> list[str]:
    """The table rows of the CLI's cold start."""
    heavy = c.get("fast_path_heavy_imports") or []
    imported = f"it imported {', '.join(heavy)}" if heavy else "no MLflow, scikit-learn, SciPy or pandas"
    return [
        f"| `tagifai predict --title` from a cold start (the champion's serving copy, compiled: {imported}"
        f") | **{c['cli_predict']['median']:.2f} s** "
        f"median (max {c['cli_predict']['max']:.2f}) | ≤ 2 s | `{c['cli_predict']['command']}`, "
        f"{c['cli_predict']['runs']} runs |",
        f"| … the same model through MLflow (the path before; the fallback) | "
        f"{c['cli_predict_mlflow']['median']:.2f} s median: **{c['ratio_mlflow_over_fast']:.1f}×** the serving "
        f"copy's | | `{c['cli_predict_mlflow']['command']}` |",
        f"| … the interpreter alone | {c['python_startup']['median']:.3f} s | | `{c['python_startup']['command']}` |",
        f"| … the serving copy's imports | {c['fast_imports']['median']:.2f} s | | `{c['fast_imports']['command']}` |",
        f"| … the MLflow path's imports | {c['imports']['median']:.2f} s | | `{c['imports']['command']}` |",
    ]


def compare_lines(compare: dict[str, Any] | None, split: dict[str, float] | None) -> list[str]:
    """The section on TF-IDF-only batch prediction: before and after in turn, and where the time goes now."""
    lines = ["## TF-IDF-only batch prediction, before and after (issue 13)", ""]
    if compare:
        runs = ", ".join(
            f"{b:,.0f} → {a:,.0f}"
            for b, a in zip(compare["before_rows_per_second"], compare["after_rows_per_second"], strict=True)
        )
        lines += [
            f"In turn on the same {compare['rows']:,} new rows ({compare['runs']} runs, rows/s before → after: "
            f"{runs}): "
            f"**{compare['ratio']:.1f}×** the rows/s of scikit-learn's path with the regex cleaning (CPU seconds: "
            f"{compare['cpu_ratio']:.1f}× fewer); the probabilities are "
            f"{'the same floats' if compare['identical_probabilities'] else '**NOT the same**'}. Before: "
            "`clean_text_regex` of each row, scikit-learn's `TfidfVectorizer` (the model's, class swapped back) and "
            "`CalibratedClassifierCV.predict_proba`; after: `predict(model, df)` (tagifai.textfeatures, "
            "tagifai.model.calibrated_linear_proba).",
            "",
        ]
    if split:
        total = sum(split.values())
        lines += [
            f"Where it goes now, each part alone on fresh rows: cleaning the text {split['clean_text']:.3f} s, TF-IDF "
            f"{split['tfidf']:.3f} s, the classifier {split['classifier']:.3f} s ({total:.3f} s in all).",
            "",
        ]
    return lines if len(lines) > 2 else []


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    b, e, s, c, lim = report["batch"], report["encode"], report["single"], report["cli"], report["limit"]
    cmd = report["command"]
    default, tfidf = b["default"], b["tfidf"]
    split = b["default_split"]
    split_total = sum(split.values())
    lines = [
        "# Prediction benchmark",
        "",
        f"Two models trained in-process on the {report['train_rows']} vendored projects: **default** (TF-IDF + "
        f'MiniLM-L6 embedding, calibrated linear SVM) and **TF-IDF only** (`TrainArgs(embedding="none")`); '
        f"inputs are new synthetic projects (benchmarks/synth.py, {e[0]['tokens_per_text']:.1f} tokens a text). "
        f"One run of `{cmd}` on {machine_line(m)}.",
        "",
        "| what | figure | goal (issue 13) | how measured |",
        "|---|---|---|---|",
        f"| batch prediction, default model | **{default['median_rows_per_second']:.0f} rows/s** (runs: "
        f"{', '.join(f'{x:.0f}' for x in default['rows_per_second'])}) | ≥ 600 rows/s | `predict(model, df)`, "
        f"{default['rows']:,} new rows × {default['runs']} |",
        f"| batch prediction, TF-IDF only | **{tfidf['median_rows_per_second']:,.0f} rows/s** (runs: "
        f"{', '.join(f'{x:,.0f}' for x in tfidf['rows_per_second'])}) | ≥ 20,000 rows/s | `predict(model, df)`, "
        f"{tfidf['rows']:,} new rows × {tfidf['runs']} |",
        f"| single prediction, warm, default | **p50 {s['default']['p50_ms']:.1f} ms**, p99 "
        f"{s['default']['p99_ms']:.1f} ms (mean {s['default']['mean_ms']:.1f}) | p50 ≤ 20 ms | "
        f"{s['default']['calls']} calls of `predict` on one new row |",
        f"| … of which the encoder (tokenizer + ONNX, batch 1) | p50 {s['default'].get('encoder_p50_ms', 0):.1f} ms "
        f"= **{s['default'].get('encoder_share', 0):.0%}** | | `SentenceEmbedder._run` on one new text, in turn |",
        f"| single prediction, warm, TF-IDF only | p50 {s['tfidf']['p50_ms']:.1f} ms, "
        f"p99 {s['tfidf']['p99_ms']:.1f} ms | | the same |",
        *(
            cli_rows(c)
            if c
            else ["| `tagifai predict --title` from a cold start | not measured (`--cli-runs 0`) | ≤ 2 s | |"]
        ),
        f"| the MiniLM encoder alone (batch 16, 2 threads) | **{e[0]['texts_per_second']:.0f} texts/s** | | "
        f"`SentenceEmbedder().encode`, {e[0]['texts']:,} new texts |",
        f"| physical limit of the encoder at these texts (float32, as it runs) | "
        f"{lim['limit_texts_per_second_float32']:.0f} texts/s | | {lim['ops_per_text'] / 1e9:.2f} GOP a text "
        f"of {lim['tokens_per_text']:.1f} tokens over {lim['peak']['float32_ops'] / 1e9:.0f} GFLOP/s |",
        f"| … if the weights ran as int8 | {lim['limit_texts_per_second_int8']:.0f} texts/s | | over "
        f"{lim['peak']['int8_ops'] / 1e9:.0f} GOP/s int8 |",
        "",
        *compare_lines(b.get("tfidf_compare"), b.get("tfidf_split")),
        "## Where batch prediction of the default model goes",
        "",
        f"Each part alone on {default['rows']:,} new rows: cleaning the text {split['clean_text']:.2f} s, "
        f"TF-IDF {split['tfidf']:.2f} s, the encoder {split['encode']:.2f} s, the classifier "
        f"{split['classifier']:.2f} s: the encoder is {split['encode'] / split_total:.0%} of the time.",
        "",
        "## The encoder",
        "",
        "| batch | ONNX threads | texts/s | tokens a text | computed (padded) tokens a text | padding |",
        "|---|---|---|---|---|---|",
    ]
    for x in e:
        lines.append(
            f"| {x['batch_size']} | {x['threads']} | {x['texts_per_second']:.0f} | {x['tokens_per_text']:.1f} | "
            f"{x['padded_tokens_per_text']:.1f} | +{x['padding_overhead']:.0%} |"
        )
    k = lim["kernels"]
    lines += [
        "",
        "ONNX Runtime's kernel time by operator (one profiled pass): "
        + ", ".join(f"{op} {share:.0%}" for op, share in k.items())
        + ". The graph runs float32 `MatMul`: the package's int8 weights are cast to float32 and scaled when the "
        "session loads, so int8 is the file's size, not the arithmetic.",
        "",
        "### The physical limit",
        "",
        f"- **Work a token**: all-MiniLM-L6-v2 has {LAYERS} layers of width {HIDDEN} with an FFN of {FFN}: "
        f"{lim['arithmetic']['matmul_weights'] / 1e6:.1f}M weights in matrix products, 2 operations each, "
        f"{lim['arithmetic']['ops_per_token_linear'] / 1e6:.1f}M operations a token; attention adds "
        f"{lim['arithmetic']['attention_share']:.1%} at these lengths. Its other "
        f"{lim['arithmetic']['embedding_table_params'] / 1e6:.1f}M parameters are embedding tables (a look-up), so "
        f'"2 × 22M params" ({lim["arithmetic"]["naive_ops_per_token_2x_params"] / 1e6:.0f}M a token) '
        "overstates the work about twice.",
        f"- **A text**: {lim['tokens_per_text']:.1f} tokens on average ([CLS] and [SEP] included) → "
        f"{lim['ops_per_text'] / 1e9:.2f} GOP; with the padding of batches of 16 sorted by length, "
        f"{lim['padded_ops_per_text'] / 1e9:.2f} GOP computed.",
        f"- **Peak**: this CPU reports {', '.join(m['simd_flags'])}"
        + ("" if {"avx512f", "avx512_vnni", "avx_vnni"} & set(m["simd_flags"]) else " and no AVX-512 or VNNI")
        + f" (family/model {m['cpu_family_model']}) at {lim['peak']['ghz']:.2f} GHz nominal (a boost clock, if the "
        f"host allows one, is not visible in the VM). float32: {lim['peak']['float32_how']} = "
        f"**{lim['peak']['float32_ops'] / 1e9:.0f} GFLOP/s**; int8: {lim['peak']['int8_how']} = "
        f"{lim['peak']['int8_ops'] / 1e9:.0f} GOP/s. Measured beside it, a float32 GEMM of the FFN's shape with "
        f"numpy's OpenBLAS: {lim['gemm']['one_thread'] / 1e9:.0f} GFLOP/s on one thread, "
        f"{lim['gemm']['all_cores'] / 1e9:.0f} on both cores (in this run's load).",
        f"- **Limit**: {lim['limit_texts_per_second_float32']:.0f} texts/s at the float32 peak, "
        f"{lim['limit_texts_per_second_gemm']:.0f} at the measured GEMM rate, "
        f"{lim['limit_texts_per_second_int8']:.0f} with true int8 products. Measured: "
        f"**{e[0]['texts_per_second']:.0f} texts/s = {lim['utilisation_float32']:.0%} of the float32 peak** "
        f"({lim['utilisation_float32_padded']:.0%} counting the padded tokens it computes; "
        f"{lim['utilisation_gemm']:.0%} of the measured GEMM rate). Matrix products are "
        f"{k.get('MatMul', 0) + k.get('FusedMatMul', 0):.0%} of the kernel time; the rest (layer norms, "
        "transposes, GELU, softmax) is memory-bound glue that a fused graph would shrink.",
        "",
        (
            "This CPU has exact int8 dot products (VNNI or AMX): the integer graph of the encoder "
            "(`TAGIFAI_ENCODER_INT8=auto`, tagifai/quantize.py; `python benchmarks/encoder.py` measures it against "
            "the float graph) runs on them; AMX tiles, not counted in the int8 peak above, could go further."
            if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(m["simd_flags"])
            else "This CPU has no VNNI or AMX: the headroom is the float32 peak (an integer graph multiplies with "
            "saturating 16-bit pair sums here, so tagifai keeps the float graph: `TAGIFAI_ENCODER_INT8=auto`)."
        ),
        "",
        f"Reproduce: `{cmd}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding-rows", type=int, default=1500, help="rows a batch, default model")
    parser.add_argument("--tfidf-rows", type=int, default=20_000, help="rows a batch, TF-IDF only")
    parser.add_argument("--encode-rows", type=int, default=800, help="texts for each encoder measurement")
    parser.add_argument("--runs", type=int, default=3, help="batches of each model (fresh rows each)")
    parser.add_argument("--latency-calls", type=int, default=200, help="single predictions of each model")
    parser.add_argument("--cli-runs", type=int, default=5, help="cold starts of tagifai predict (0: skip)")
    parser.add_argument(
        "--compare-runs", type=int, default=2, help="TF-IDF batches by the path before and after, in turn (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for predict.*")
    opts = parser.parse_args(argv)
    # The persistent embedding store (tagifai/embeddings.py) would answer texts an earlier run encoded, and a
    # trained model's embedder writes a shard per call: off, so every figure here is the encoder at work
    # (the CLI subprocesses inherit it).
    os.environ["TAGIFAI_EMBEDDING_CACHE"] = "off"

    from tagifai.sources import load_labeled_projects
    from tagifai.train import TrainArgs, train

    load_start = os.getloadavg()[0]
    df = load_labeled_projects(DATA_DIR)
    # New texts for every measurement: runs of each batch, the split, the encoder's four settings, the latencies.
    n_embed, n_enc, n_lat = opts.embedding_rows, opts.encode_rows, opts.latency_calls + 5
    need = n_embed * (opts.runs + 1) + n_enc * 5 + 2 * n_lat
    rows, _ = synth.generate(max(need, opts.tfidf_rows * opts.runs), seed=opts.seed, source=synth.load_source(DATA_DIR))
    rows = rows.sample(frac=1.0, random_state=opts.seed).reset_index(drop=True)  # mix the copies of each real row
    cursor = 0

    def take(n: int) -> pd.DataFrame:
        nonlocal cursor
        part = rows.iloc[cursor : cursor + n].reset_index(drop=True)
        cursor += n
        return part

    print("training the two models ...", flush=True)
    models, train_seconds = {}, {}
    for name, args in (("default", TrainArgs()), ("tfidf", TrainArgs(embedding="none"))):
        result = train(df, args)
        models[name], train_seconds[name] = result.model, result.seconds
    embed_frames = [take(n_embed) for _ in range(opts.runs)]
    print("batch prediction ...", flush=True)
    batch = {"default": time_batches(models["default"], embed_frames)}
    batch["default_split"] = split_batch(models["default"], take(n_embed))
    tfidf_frames = [rows.iloc[i * opts.tfidf_rows : (i + 1) * opts.tfidf_rows] for i in range(opts.runs)]
    batch["tfidf"] = time_batches(models["tfidf"], tfidf_frames)
    batch["tfidf_split"] = split_batch(models["tfidf"], tfidf_frames[-1])
    if opts.compare_runs > 0:
        print("TF-IDF batch, before and after ...", flush=True)
        batch["tfidf_compare"] = compare_tfidf_paths(
            models["tfidf"], [tfidf_frames[i % len(tfidf_frames)] for i in range(opts.compare_runs)]
        )
    print("the encoder ...", flush=True)
    encode = [
        time_encode(raw_texts(take(n_enc)), batch=16),
        time_encode(raw_texts(take(n_enc)), batch=1),
        time_encode(raw_texts(take(n_enc)), batch=64),
        time_encode(raw_texts(take(n_enc)), batch=16, threads=1),
    ]
    kernels = profile_kernels(raw_texts(take(n_enc))[:256])
    print("single predictions ...", flush=True)
    single = {name: time_single(model, take(n_lat)) for name, model in models.items()}
    gemm = measure_gemm()

    registered, cli = {}, {}
    if opts.cli_runs > 0:
        print("the CLI from a cold start ...", flush=True)
        state = Path(tempfile.mkdtemp(prefix="tagifai-bench-predict-"))
        try:
            registered = register_champion(df, state)
            cli = cli_cold_start(state, opts.cli_runs)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    m = machine(load_start)
    tokens = encode[0]["tokens_per_text"]
    arithmetic = encoder_arithmetic(tokens)
    padded = encoder_arithmetic(encode[0]["padded_tokens_per_text"])["ops_per_text"]
    peak = peak_ops(m)
    rate = encode[0]["texts_per_second"]
    limit = {
        "tokens_per_text": tokens,
        "arithmetic": arithmetic,
        "ops_per_text": arithmetic["ops_per_text"],
        "padded_ops_per_text": padded,
        "peak": peak,
        "gemm": gemm,
        "kernels": kernels,
        "limit_texts_per_second_float32": peak["float32_ops"] / arithmetic["ops_per_text"],
        "limit_texts_per_second_int8": peak["int8_ops"] / arithmetic["ops_per_text"],
        "limit_texts_per_second_gemm": gemm["ops_per_second"] / arithmetic["ops_per_text"],
        "utilisation_float32": rate * arithmetic["ops_per_text"] / peak["float32_ops"],
        "utilisation_float32_padded": rate * padded / peak["float32_ops"],
        "utilisation_gemm": rate * arithmetic["ops_per_text"] / gemm["ops_per_second"],
    }
    report = {
        "benchmark": "predict",
        "command": benchmark_command("predict.py", argv),
        "machine": m,
        "train_rows": len(df),
        "train_seconds": train_seconds,
        "registered": registered,
        "batch": batch,
        "encode": encode,
        "single": single,
        "cli": cli,
        "limit": limit,
        "goals": {  # name -> [goal, this run]
            "embedding_rows_per_second": [
                GOALS["embedding_rows_per_second"],
                batch["default"]["median_rows_per_second"],
            ],
            "tfidf_rows_per_second": [GOALS["tfidf_rows_per_second"], batch["tfidf"]["median_rows_per_second"]],
            "warm_p50_ms": [GOALS["warm_p50_ms"], single["default"]["p50_ms"]],
            "cli_seconds": [GOALS["cli_seconds"], cli["cli_predict"]["median"] if cli else None],
        },
    }
    text = markdown(report)
    paths = write_results("predict", report, text, opts.out)
    print(text)
    print(f"wrote {paths[1]} and {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
