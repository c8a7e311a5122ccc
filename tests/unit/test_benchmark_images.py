"""benchmarks/images.py: the goal verdicts and the results page from build records (the builds themselves need a
Docker engine and minutes: `python benchmarks/images.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from _bench import machine as bench_machine

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_images_benchmark", ROOT / "benchmarks" / "images.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _image(name: str, size_mb: int, own_mb: int | None, seconds: float, cached: int) -> dict:
    return {
        "name": name,
        "size": size_mb * 10**6,
        "own_size": None if own_mb is None else own_mb * 10**6,
        "seconds": seconds,
        "steps": 19,
        "cached": cached,
    }


def _report() -> dict:
    images = [
        _image("base", 560, 438, 0.1, 9),
        _image("extract", 591, 31, 12.5, 15),
        _image("train", 1106, 546, 40.2, 14),
        _image("evaluate", 598, 38, 3.0, 19),
    ]
    again = [{**i, "seconds": 0.2, "cached": i["steps"]} for i in images]
    machine = bench_machine()
    runs = [
        {"name": "as is", "wall_seconds": 70.0, "base_image": "b", "images": images},
        {"name": "unchanged", "wall_seconds": 4.0, "base_image": "b", "images": again},
    ]
    return {
        "machine": machine,
        "command": "python benchmarks/images.py",
        "runs": runs,
        "verdicts": bench.verdicts(images),
    }


def test_only_the_ml_images_are_judged_against_600_mb():
    verdicts = bench.verdicts(_report()["runs"][0]["images"])
    assert verdicts == [
        {"image": "train", "bytes": 1106 * 10**6, "over": True},
        {"image": "evaluate", "bytes": 598 * 10**6, "over": False},
    ]


def test_the_page_shows_every_image_and_run():
    page = bench.render(_report())
    assert "| train | 1106 | 546 | 40.2 (14/19) | 0.2 (19/19) |" in page
    assert "| base | 560 | 438 |" in page
    assert "| **all, wall** | | | **70.0 s** | **4.0 s** |" in page
    assert "| each ML step image <= 600 MB | train | 1106 MB | over |" in page
    assert "| each ML step image <= 600 MB | evaluate | 598 MB | under |" in page
