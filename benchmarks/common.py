"""What every benchmark shares: the environment and shape of the measured commands, timing summaries, the
peak memory of a process tree, the machine (cores, CPU flags, load average) and writing the results.

Only the standard library: importing this costs nothing beside the benchmark it serves.

Memory of a measured command (:func:`run_measured`) is reported three ways, because a pipeline run is a
tree of processes (``tagifai run`` and, under kfp.local's subprocess runner, one process per step):

- ``peak_tree_rss``: the largest sum of the resident set sizes of the command and all its descendants,
  sampled from /proc every ``interval`` seconds (0.2 by default; a process that lives less than that
  may be missed). Pages shared between processes count once per process, so this over-counts;
- ``peak_tree_pss``: the same with proportional set sizes (/proc/PID/smaps_rollup: a shared page counts
  1/n in each of its n processes), the honest total of the tree; sampled every 10th time only (reading it
  walks the page tables: 10 ms a large process), so it may miss a short peak;
- ``max_process_rss``: the largest single process of the tree over its whole life (``ru_maxrss`` of
  ``wait4``, which the kernel keeps for the child and every descendant it waited for): no sampling gap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: The Made With ML files (projects.csv, tags.csv) the benchmarks run on: ``$DATA_DIR``, else the vendored copy.
DATA_DIR = Path(os.environ.get("DATA_DIR") or ROOT / "data" / "madewithml")
GIB = 1024**3
MIB = 1024**2


# --------------------------------------------------------------------------- the measured commands


def tagifai_env(**extra: str) -> dict[str, str]:
    """The environment of the measured commands: this one without TAGIFAI_* settings and MLflow's tracking
    URI (the flags say all), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGIFAI_") and k != "MLFLOW_TRACKING_URI"}
    env.update(extra)
    return env


def tagifai_command() -> list[str]:
    """The ``tagifai`` console script of this interpreter's environment (else ``python -m tagifai_cli.main``)."""
    script = Path(sys.executable).parent / "tagifai"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tagifai_cli.main"]


def shown(argv: list[str]) -> str:
    """A command as a person would type it (the venv's own interpreter and script shortened)."""
    bindir = str(Path(sys.executable).parent) + os.sep
    out = [a.replace(bindir, "") if a.startswith(bindir) else a for a in argv]
    out = ["python" if a == sys.executable or a in ("python3", "python3.11") else a for a in out]
    return " ".join(quoted(a) for a in out)


def quoted(arg: str) -> str:
    """Shell quoting that keeps Python code readable: double quotes around code holding single quotes."""
    if shlex.quote(arg) == arg or any(c in arg for c in '"$`\\!'):
        return shlex.quote(arg)
    return f'"{arg}"'


def anonymised(text: str, **paths: str | Path) -> str:
    """``text`` with each of ``paths`` (temporary folders) replaced by its NAME, and the project root dropped."""
    for name, path in paths.items():
        text = text.replace(str(path), name)
    return text.replace(str(ROOT) + os.sep, "")


def benchmark_command(script: str, argv: list[str] | None) -> str:
    """``python benchmarks/<script> ARGS`` as it was run."""
    args = argv if argv is not None else sys.argv[1:]
    return " ".join(["python", f"benchmarks/{script}", *map(quoted, args)]).strip()


# --------------------------------------------------------------------------- timing


def summary(seconds: list[float], command: str) -> dict[str, Any]:
    """Median, max and min of repeated wall seconds of one command."""
    return {
        "command": command,
        "runs": len(seconds),
        "median": statistics.median(seconds),
        "max": max(seconds),
        "min": min(seconds),
        "seconds": seconds,
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0-100) of ``values``, linear between the closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def time_process(argv: list[str], runs: int, check=None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall seconds of ``runs`` runs of ``argv`` (each must exit 0; ``check(stdout)`` must hold)."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env or tagifai_env(), cwd=ROOT)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{shown(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        if check is not None and not check(done.stdout):
            raise SystemExit(f"{shown(argv)}: unexpected output:\n{done.stdout[-2000:]}")
    return summary(seconds, shown(argv))


# --------------------------------------------------------------------------- memory of a process tree


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc/PID/stat)."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # the name may hold spaces and parentheses
        out[int(entry.name)] = int(fields[1])
    return out


def tree(root: int) -> list[int]:
    """``root`` and its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss(pid: int) -> int:
    """Resident set size of one process in bytes (/proc/PID/statm: cheap; 0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def pss(pid: int) -> int:
    """Proportional set size of one process in bytes (/proc/PID/smaps_rollup: walks the page tables, about
    10 ms for a process of a few hundred MB; 0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every ``interval`` seconds, and its summed PSS every
    ``pss_every``-th sample (PSS is the costly one), until :meth:`stop`. A sample of a run's tree costs about
    5 ms (RSS) and 30 ms (PSS) here: about 3% of one core at the defaults."""

    def __init__(self, root: int, interval: float = 0.2, pss_every: int = 10):
        super().__init__(daemon=True)
        self.root, self.interval, self.pss_every = root, interval, pss_every
        self.peak_rss = self.peak_pss = self.samples = self.max_processes = 0
        self._done = threading.Event()

    def sample(self) -> None:
        pids = tree(self.root)
        self.peak_rss = max(self.peak_rss, sum(rss(pid) for pid in pids))
        if self.samples % self.pss_every == 0:
            self.peak_pss = max(self.peak_pss, sum(pss(pid) for pid in pids))
        self.max_processes = max(self.max_processes, len(pids))
        self.samples += 1

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Measured:
    """One run of a command: wall seconds, exit code, output, memory of its process tree, the load."""

    command: str
    seconds: float
    returncode: int
    peak_tree_rss: int
    peak_tree_pss: int
    max_process_rss: int
    max_processes: int
    samples: int
    load_start: float
    load_end: float
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    def to_dict(self, output: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not output:
            d.pop("stdout")
            d["stderr_tail"] = d.pop("stderr")[-1500:] if self.returncode else ""
        return d


def run_measured(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, interval: float = 0.2
) -> Measured:
    """Run ``argv`` to its end (output to temporary files), sampling its process tree's memory."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load_start = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, env=env or tagifai_env(), cwd=cwd, start_new_session=True, text=True
        )
        sampler = TreeSampler(proc.pid, interval)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            os.killpg(proc.pid, 15)  # the session this call started, and nothing else
            proc.wait()
            raise
        finally:
            sampler.stop()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        maxrss = usage.ru_maxrss * 1024  # kilobytes on Linux
        return Measured(
            command=shown(argv),
            seconds=seconds,
            returncode=proc.returncode,
            peak_tree_rss=sampler.peak_rss,
            peak_tree_pss=sampler.peak_pss,
            max_process_rss=maxrss,
            max_processes=sampler.max_processes,
            samples=sampler.samples,
            load_start=load_start,
            load_end=os.getloadavg()[0],
            stdout=out.read(),
            stderr=err.read(),
        )


# --------------------------------------------------------------------------- the machine


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


#: CPU flags that decide the int8 and float32 throughput of the encoder (ONNX Runtime's kernels).
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "amx_int8")


def machine(load_start: float | None = None) -> dict[str, Any]:
    """Cores, CPU, memory, Python, the commit and the load average (1 min; ``load_start`` when given)."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * 1024
    except (OSError, StopIteration):
        mem = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu.get("model name", platform.processor()),
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "cpu_mhz": float(cpu["cpu MHz"]) if "cpu MHz" in cpu else None,
        "simd_flags": [f for f in SIMD_FLAGS if f in flags],
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_start": os.getloadavg()[0] if load_start is None else load_start,
        "load_end": os.getloadavg()[0],
        "loadavg_end": list(os.getloadavg()),
    }


def git_commit() -> str:
    """The checked-out commit, with ``+dirty`` when files differ from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_line(m: dict[str, Any]) -> str:
    """One sentence of the machine and its load, for a results page."""
    flags = ", ".join(m.get("simd_flags") or []) or "none"
    return (
        f"{m['cpus']} cores of {m.get('cpu_model', '?')} (SIMD: {flags}), "
        f"{(m.get('memory_bytes') or 0) / GIB:.0f} GiB, Python {m['python']}, commit {m.get('commit') or '?'}, "
        f"{m.get('date', '')[:10]}; load average {m['load_start']:.2f} at start, {m['load_end']:.2f} at end"
    )


# --------------------------------------------------------------------------- results


def write_results(name: str, report: dict[str, Any], markdown: str, out: Path = RESULTS) -> tuple[Path, Path]:
    """``<out>/<name>.json`` and ``<out>/<name>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f"{name}.json", out / f"{name}.md"
    paths[0].write_text(json.dumps(report, indent=2, default=str) + "\n")
    paths[1].write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    return paths


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def mib(n: float) -> str:
    return f"{n / MIB:.0f} MiB"
