"""What the benchmark page tests share: a machine as benchmarks/common.py's ``machine()`` describes one."""

from __future__ import annotations

from typing import Any


def machine(**facts: Any) -> dict[str, Any]:
    """A 2-CPU machine of no particular model, with ``facts`` replacing its defaults."""
    return {
        "cpus": 2,
        "cpu_model": "cpu",
        "simd_flags": [],
        "memory_bytes": 0,
        "python": "3.11",
        "commit": "abc",
        "date": "2026-12-03",
        "load_start": 1.0,
        "load_end": 1.5,
        **facts,
    }
