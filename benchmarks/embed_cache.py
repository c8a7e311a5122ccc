"""The persistent vector store of the sentence embedding (tagifai/embeddings.py: VectorStore), issue 13's
"retraining after 1% new rows encodes only the new rows".

N synthetic texts (benchmarks/synth.py: title + " " + description, as the model embeds them), each phase in a
new process with the same store folder (``TAGIFAI_EMBEDDING_CACHE``), as the pipeline's steps run:

- **cold**: an empty store: every text is encoded, then written as one shard;
- **warm**: the same N texts again: every vector is read from the store, the encoder never runs;
- **1% new**: the N texts with N/100 new ones among them (new texts each repeat): only those are encoded.

Each phase reports the seconds of ``SentenceEmbedder().encode(texts)`` in its process (with finding and
checking the model file, about 0.3 s, and the session load when it encodes; ``tagifai.config`` is imported
before, as in a step) and the wall seconds of the whole process (Python, the imports). Ratios are to cold,
in the same run.

    python benchmarks/embed_cache.py                      # N=5000, warm and 1% three times each
    python benchmarks/embed_cache.py --rows 1000 --repeats 5 --cold-runs 2

Writes benchmarks/results/embed_cache.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import anonymised, benchmark_command, machine, machine_line, tagifai_env, write_results  # noqa: E402

CHILD = """
import json, sys, time
start = time.perf_counter()
from tagifai.embeddings import SentenceEmbedder
import tagifai.config  # a step has imported it (get_settings) before it encodes
imported = time.perf_counter() - start
texts = json.load(open(sys.argv[1], encoding="utf-8"))
embedder = SentenceEmbedder()
start = time.perf_counter()
vectors = embedder.encode(texts)
seconds = time.perf_counter() - start
print(json.dumps({"encode_seconds": seconds, "import_seconds": imported, "rows": len(vectors), **embedder.stats}))
"""


def synthetic_texts(n: int) -> list[str]:
    """``n`` distinct raw texts of the synthetic projects (seed 0)."""
    from synth import generate

    projects, _ = generate(n, seed=0)
    texts = (projects["title"] + " " + projects["description"]).tolist()
    if len(set(texts)) != n:
        raise SystemExit("synthetic texts are not distinct")
    return texts


def run_phase(texts: list[str], store: Path, work: Path, name: str) -> dict[str, Any]:
    """One encode of ``texts`` in a new process with the store ``store``."""
    path = work / f"{name}.json"
    path.write_text(json.dumps(texts), encoding="utf-8")
    env = tagifai_env(TAGIFAI_EMBEDDING_CACHE=str(store))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: exited {done.returncode}\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"phase": name, "wall_seconds": wall, "load_start": load, "load_end": os.getloadavg()[0], **out}


def med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def markdown(report: dict[str, Any]) -> str:
    n, new = report["rows"], report["new_rows"]
    cold, warm, delta = (report["phases"][k] for k in ("cold", "warm", "one_percent"))
    lines = [
        "# Embedding store: cold, warm and 1% new",
        "",
        f"`{report['command']}`: {n} synthetic texts encoded by `SentenceEmbedder().encode` in a new process "
        "each time, one store folder (`TAGIFAI_EMBEDDING_CACHE`); medians of the runs. "
        "`encode` is the call, `process` the whole child process (interpreter, imports, the call).",
        "",
        machine_line(report["machine"]),
        "",
        "| phase | runs | texts encoded | read from the store | encode s (median) | process s (median) "
        "| encode / cold |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in (("cold (empty store)", cold), ("warm (same texts)", warm), (f"1% new ({new} texts)", delta)):
        lines.append(
            f"| {label} | {len(runs)} | {runs[0]['encoded']} | {runs[0]['from_store']} | "
            f"{med(runs, 'encode_seconds'):.2f} | {med(runs, 'wall_seconds'):.2f} | "
            f"{med(runs, 'encode_seconds') / med(cold, 'encode_seconds'):.4f} |"
        )
    r = report["ratios"]
    lines += [
        "",
        f"- warm / cold: **{r['warm_over_cold']:.4f}** of the encode ({r['cold_over_warm']:.0f}× faster); "
        f"1% new / cold: **{r['one_percent_over_cold']:.4f}** (encoding {new} of {n + new} texts: the ideal is "
        f"{new / (n + new):.4f} plus loading the session).",
        f"- store: {report['store_bytes'] / 2**20:.1f} MiB in {report['shards']} shards after every phase "
        f"({report['store_bytes'] / max(report['stored_keys'], 1):.0f} bytes a text).",
        "",
        "Every run (seconds): "
        + "; ".join(
            f"{k} " + ", ".join(f"{x['encode_seconds']:.2f}/{x['wall_seconds']:.2f}" for x in v)
            for k, v in report["phases"].items()
        )
        + " (encode/process).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="texts of the cold and warm phases")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the warm and 1%% phases")
    parser.add_argument("--cold-runs", type=int, default=1, help="runs of the cold phase (a fresh store each)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    n, new = args.rows, max(1, args.rows // 100)
    texts_all = synthetic_texts(n + new * args.repeats)
    texts, extra = texts_all[:n], texts_all[n:]
    start_load = os.getloadavg()[0]
    phases: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": [], "one_percent": []}
    with tempfile.TemporaryDirectory(prefix="embed-cache-") as tmp:
        work = Path(tmp)
        for i in range(args.cold_runs):
            store = work / f"store-{i}"
            phases["cold"].append(run_phase(texts, store, work, f"cold-{i}"))
            print(f"cold {i}: {phases['cold'][-1]['encode_seconds']:.2f} s", flush=True)
        for i in range(args.repeats):
            phases["warm"].append(run_phase(texts, store, work, f"warm-{i}"))
            print(f"warm {i}: {phases['warm'][-1]['encode_seconds']:.2f} s", flush=True)
        for i in range(args.repeats):
            fresh = extra[i * new : (i + 1) * new]
            mixed = texts[: n // 2] + fresh + texts[n // 2 :]
            phases["one_percent"].append(run_phase(mixed, store, work, f"one-percent-{i}"))
            print(f"1% {i}: {phases['one_percent'][-1]['encode_seconds']:.2f} s", flush=True)
        shards = list(store.glob("*/shard-*.npy"))
        store_bytes = sum(p.stat().st_size for p in shards)
    cold, warm, delta = (med(phases[k], "encode_seconds") for k in ("cold", "warm", "one_percent"))
    report = {
        "command": benchmark_command("embed_cache.py", argv),
        "rows": n,
        "new_rows": new,
        "phases": phases,
        "ratios": {
            "warm_over_cold": warm / cold,
            "cold_over_warm": cold / warm,
            "one_percent_over_cold": delta / cold,
            "warm_process_over_cold_process": med(phases["warm"], "wall_seconds") / med(phases["cold"], "wall_seconds"),
            "one_percent_process_over_cold_process": med(phases["one_percent"], "wall_seconds")
            / med(phases["cold"], "wall_seconds"),
        },
        "shards": len(shards),
        "store_bytes": store_bytes,
        "stored_keys": n + new * args.repeats,
        "machine": machine(start_load),
    }
    md = anonymised(markdown(report))
    paths = write_results("embed_cache", report, md, **({"out": args.out} if args.out else {}))
    print(md)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
