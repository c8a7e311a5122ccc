"""Encoder benchmark: the MiniLM encoder's float32 graph (the model file's own) against the integer graph
derived from it (tagifai.quantize), in one process, alternating (issue 13).

Every round encodes ``--texts`` new synthetic texts (benchmarks/synth.py: no text repeats, so no memo
answers) with a fresh :class:`SentenceEmbedder` of each graph (no store, its session loaded beforehand),
in turn and in alternating order, so both see the same load. Reported per graph: texts/s of each round and
the median; the ratio int8/float of each round; the agreement of the two graphs' vectors on the same texts
(cosine: mean, min, 1st percentile); the integer graph's batch independence (the largest difference
between a text's vector in batches of ``--batch`` and alone); the time to derive the integer graph and to
load each session; the load average before and after.

    python benchmarks/encoder.py                          # 800 texts, 4 rounds, batch 16, 2 threads
    python benchmarks/encoder.py --texts 800 --rounds 6 --threads 1
    python benchmarks/encoder.py --out benchmarks/results # encoder.md and encoder.json there
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import machine, machine_line, write_results  # noqa: E402


def new_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct raw texts (title + " " + description) of synthetic projects."""
    from benchmarks.synth import generate
    from tagifai.data import raw_text

    projects, _ = generate(count, seed=seed)
    return raw_text(projects).tolist()


def measure(texts: list[str], rounds: int, batch: int, threads: int) -> dict[str, Any]:
    from tagifai import embeddings
    from tagifai.embeddings import SentenceEmbedder

    before = embeddings._threads
    embeddings._threads = lambda: threads
    try:
        start = time.perf_counter()
        embeddings.integer_graph()
        derive = time.perf_counter() - start
        loads = {}
        for graph in ("float", "int8"):
            start = time.perf_counter()
            embeddings.session(graph=graph)
            loads[graph] = time.perf_counter() - start
        size = len(texts) // 2
        halves = [texts[:size], texts[size : 2 * size]]
        rates: dict[str, list[float]] = {"float": [], "int8": []}
        vectors: dict[str, np.ndarray] = {}
        for r in range(rounds):
            chunk = halves[r % 2]
            for graph in ("float", "int8") if r % 2 == 0 else ("int8", "float"):
                embedder = SentenceEmbedder(batch_size=batch, store=None, graph=graph)
                start = time.perf_counter()
                out = embedder.encode(chunk)
                rates[graph].append(len(chunk) / (time.perf_counter() - start))
                if r == 0:
                    vectors[graph] = out
        alone = np.vstack([SentenceEmbedder(store=None, graph="int8").encode([t]) for t in halves[0][:64]])
    finally:
        embeddings._threads = before
    cosine = (vectors["float"] * vectors["int8"]).sum(axis=1)
    return {
        "texts_per_round": size,
        "rounds": rounds,
        "batch_size": batch,
        "threads": threads,
        "derive_seconds": derive,
        "session_seconds": loads,
        "rates": rates,
        "median": {g: statistics.median(v) for g, v in rates.items()},
        "ratios": [i / f for i, f in zip(rates["int8"], rates["float"], strict=True)],
        "cosine": {
            "mean": float(cosine.mean()),
            "min": float(cosine.min()),
            "p1": float(np.percentile(cosine, 1)),
        },
        "batch_independence_max_abs": float(np.abs(alone - vectors["int8"][:64]).max()),
    }


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    ratios = r["ratios"]
    lines = [
        "# Encoder: float32 graph vs integer graph",
        "",
        machine_line(report["machine"]),
        "",
        f"{r['texts_per_round']} new texts a round, {r['rounds']} rounds alternating, batch {r['batch_size']}, "
        f"{r['threads']} threads, no embedding store.",
        "",
        "| graph | texts/s (rounds) | median | session load |",
        "|---|---|---|---|",
    ]
    for graph in ("float", "int8"):
        rounds = ", ".join(f"{v:.0f}" for v in r["rates"][graph])
        lines.append(f"| {graph} | {rounds} | **{r['median'][graph]:.0f}** | {r['session_seconds'][graph]:.2f} s |")
    lines += [
        "",
        f"int8 / float, round by round: {', '.join(f'{x:.2f}' for x in ratios)} "
        f"(median **{statistics.median(ratios):.2f}x**).",
        f"Agreement (cosine of the two graphs' vectors of the same texts): mean {r['cosine']['mean']:.5f}, "
        f"1st percentile {r['cosine']['p1']:.5f}, min {r['cosine']['min']:.5f}.",
        f"Batch independence of the integer graph (64 texts alone vs in batches): max |difference| "
        f"{r['batch_independence_max_abs']:.1e}. Deriving the integer graph: {r['derive_seconds']:.3f} s.",
        "",
        "Reproduce: `" + report["command"] + "`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=800, help="new texts a round (default 800)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for encoder.md and encoder.json")
    opts = parser.parse_args(argv)
    os.environ["TAGIFAI_EMBEDDING_CACHE"] = "off"
    texts = new_texts(2 * opts.texts, opts.seed)
    load_start = os.getloadavg()[0]
    result = measure(texts, opts.rounds, opts.batch, opts.threads)
    report = {
        "command": "python benchmarks/encoder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(load_start),
        "result": result,
    }
    text = markdown(report)
    print(text)
    if opts.out:
        write_results("encoder", report, text, opts.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
