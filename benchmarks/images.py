"""Image sizes and build times (issue 13: "image sizes and build times"; goal: each ML step image <= 600 MB).

Builds the step images with ``tagifai images build`` in a new process, as a user does, and reads what it records
in ``build/images.json``: per image its size, what it adds to the shared base, the build's seconds and how many
of its build steps came from the engine's cache. The runs, in order:

- **as is**: a build with the engine's cache (after a source change: the project layer and what follows);
- **unchanged**: the same build again, nothing changed (every layer cached: the fixed cost of a build);
- **cold** (``--cold``): ``--no-cache``, every layer built again (several minutes; the base image of
  ``BASE_IMAGE`` must exist or is built first with debootstrap, not timed here).

    python benchmarks/images.py                                   # as is + unchanged
    python benchmarks/images.py --cold --base-image tagifai-python:3.11-bookworm

Needs a Docker engine (``bash .ci/docker.sh`` starts one on this machine). Writes
benchmarks/results/images.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, benchmark_command, machine, machine_line, tagifai_command, write_results  # noqa: E402

#: The images of the ML steps (drift scores the champion, with Evidently), which the goal is about (all are listed).
ML_IMAGES = ("optimize", "train", "evaluate", "drift")
GOAL_BYTES = 600 * 10**6
RECORD = ROOT / "build" / "images.json"


def build(base_image: str | None, cold: bool) -> dict[str, Any]:
    """One ``tagifai images build`` in a new process: its wall seconds and the record it wrote."""
    argv = [*tagifai_command(), "images", "build"]
    if base_image:
        argv += ["--base-image", base_image]
    if cold:
        argv.append("--no-cache")
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, env=dict(os.environ))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    record = json.loads(RECORD.read_text())["build"]
    return {"wall_seconds": round(seconds, 1), "base_image": record.get("base_image"), "images": record["images"]}


def verdicts(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goal per ML image: its size against 600 MB."""
    rows = []
    for image in images:
        if image["name"] in ML_IMAGES:
            size = int(image["size"])
            rows.append({"image": image["name"], "bytes": size, "over": size > GOAL_BYTES})
    return rows


def render(report: dict[str, Any]) -> str:
    runs = report["runs"]
    names = [image["name"] for image in runs[0]["images"]]
    lines = [
        "# Image sizes and build times",
        "",
        f"`tagifai images build` in a new process per run, sizes from the engine (`build/images.json`), on "
        f"{machine_line(report['machine'])}. Base image: `{runs[0]['base_image']}`.",
        "",
        "| image | size MB | added to the shared base MB | "
        + " | ".join(f"{run['name']}: s (steps cached)" for run in runs)
        + " |",
        "|---|---|---|" + "---|" * len(runs),
    ]
    for name in names:
        first = next(i for i in runs[0]["images"] if i["name"] == name)
        cells = []
        for run in runs:
            image = next((i for i in run["images"] if i["name"] == name), None)
            cells.append("" if image is None else f"{image['seconds']:.1f} ({image['cached']}/{image['steps']})")
        own = first.get("own_size")
        lines.append(
            f"| {name} | {first['size'] / 1e6:.0f} | {'' if own is None else f'{own / 1e6:.0f}'} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("| **all, wall** | | | " + " | ".join(f"**{run['wall_seconds']:.1f} s**" for run in runs) + " |")
    lines += ["", "| goal (issue 13) | image | this run | verdict |", "|---|---|---|---|"]
    for row in report["verdicts"]:
        verdict = "over" if row["over"] else "under"
        lines.append(f"| each ML step image <= 600 MB | {row['image']} | {row['bytes'] / 1e6:.0f} MB | {verdict} |")
    lines += [
        "",
        "Sizes are the engine's (uncompressed layers; the shared base is stored once however many images use it). "
        "Why the ML images stay over 600 MB, package by package: docs/benchmarks.md.",
        "",
        f"Reproduce: `{report['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-image", default=os.environ.get("BASE_IMAGE"), help="BASE_IMAGE (default: $BASE_IMAGE)")
    p.add_argument("--cold", action="store_true", help="also a --no-cache build (minutes)")
    p.add_argument("--out", type=Path, default=None, help="folder for images.md and images.json")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    runs = [{"name": "as is", **build(args.base_image, cold=False)}]
    runs.append({"name": "unchanged", **build(args.base_image, cold=False)})
    if args.cold:
        runs.append({"name": "cold", **build(args.base_image, cold=True)})
    report = {
        "machine": machine(load),
        "command": benchmark_command("images.py", argv),
        "runs": runs,
        "verdicts": verdicts(runs[0]["images"]),
    }
    paths = write_results("images", report, render(report), **({"out": args.out} if args.out else {}))
    print(render(report))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
