"""Model fits of cross-validation folds in parallel processes, with the same results as one after the other (issue 13).

The hyperparameter search fits a model per fold of every trial and training fits one per out-of-fold
threshold fold: most of the optimize and train steps' time, one core busy while the others wait. scikit-learn's
own ``n_jobs`` does not help (liblinear is single-threaded; the TF-IDF counting holds the GIL), so
:class:`FoldPool` runs the fold fits in forked worker processes, as many as the CPUs this process may use
(:func:`available_cpus`: its CPU affinity, and the cgroup's CPU quota of a Kubernetes pod or a Docker
``--cpus``), or :data:`WORKERS_ENV` says, and no more than the memory holds: each worker holds the matrices of the
fold it fits, so a caller that estimates them (``bytes_per_worker``) gets only as many workers as
:func:`memory_available` (a pod's memory limit, or the machine's) leaves room for; one, when the data is large
for the limit, and then no worker at all.

Same results: a fold's fit reads only its own rows and arguments (seeded), so it gives the same model in any
process; :meth:`FoldPool.ordered` hands the results back in fold order, so a trial reports the same running
means to Optuna's pruner and is pruned at the same fold as in one process (the folds already started beyond
it are dropped). The workers are forked when the pool opens (:meth:`FoldPool.__enter__`), before the caller
opens databases, encoder sessions or threads, and inherit what the pool's ``state`` holds (the data, the folds):
a task sends only its arguments. Where ``fork`` is not a start method (Windows, or a platform without it) or
one process is all there is, the pool runs the work in the calling process, one item after the other.

Nothing here imports scikit-learn, pandas or kfp.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

#: Worker processes of a pool: unset or "auto" (the CPUs of :func:`available_cpus`), a number (1 or 0: none,
#: the work runs in the calling process). The field ``cv_workers`` of :class:`tagifai.config.Settings` declares
#: it (docs/settings.md) and accepts the same values; it is read here, from the environment, when a pool opens.
WORKERS_ENV = "TAGIFAI_CV_WORKERS"

#: What the workers of the open pool inherit (set just before they are forked).
_STATE: dict[str, Any] = {}


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 ``cpu.max``, else v1's cfs quota), None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its affinity (else ``os.cpu_count()``), capped by the cgroup quota rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory_available(cgroup_root: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes this process's cgroup may still take (v2 ``memory.max - memory.current``, v1 ``limit_in_bytes -
    usage_in_bytes``: a pod's or a container's memory limit), else the machine's ``MemAvailable``, whichever is less."""
    room = []
    for limit, usage in (
        (cgroup_root / "memory.max", cgroup_root / "memory.current"),
        (cgroup_root / "memory" / "memory.limit_in_bytes", cgroup_root / "memory" / "memory.usage_in_bytes"),
    ):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:  # "max" or v1's "unlimited" (about 2^63)
            room.append(max(0, cap - used))
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                room.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(room) if room else 1 << 62


def workers_setting(environ: dict[str, str] | None = None) -> int:
    """Worker processes from :data:`WORKERS_ENV`: "" or "auto": :func:`available_cpus`; "off"/"none": 1; a number
    >= 0 (0 means 1). Anything else is a ValueError naming the variable."""
    value = (os.environ if environ is None else environ).get(WORKERS_ENV, "").strip().lower()
    if value in ("", "auto"):
        return available_cpus()
    if value in ("off", "none"):
        return 1
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise ValueError(f"{WORKERS_ENV}={value!r}: expected a number of processes (0 or 1: none) or auto")
    return max(1, workers)


def can_fork() -> bool:
    """Whether ``fork`` is a start method here (Linux, macOS; not Windows)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _one_thread_each() -> None:
    """A worker's initializer: native thread pools (OpenBLAS, OpenMP) of one thread, so that the workers together
    use the CPUs once (with one pool of a thread per CPU in each worker, the fits ran slower than in one process)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency: without it the pools keep their size
        return
    threadpool_limits(limits=1)


def _call(function: Callable[[dict[str, Any], Any], Any], item: Any) -> Any:
    return function(_STATE, item)


class FoldPool:
    """``with FoldPool(state, workers) as pool: pool.ordered(function, items)`` runs ``function(state, item)`` for
    each item in ``workers`` forked processes (module docstring); ``workers`` None: :func:`workers_setting`, capped
    by ``max_items`` (no idle worker) and, when ``bytes_per_worker`` estimates what a worker adds while it works, by
    the memory: as many workers as fit in :func:`memory_available` less ``reserve_bytes`` (what the caller itself
    still needs meanwhile). One pool at a time per process. ``function`` must be a module-level function (it is
    pickled by name); items and results must pickle."""

    def __init__(
        self,
        state: dict[str, Any],
        workers: int | None = None,
        max_items: int | None = None,
        bytes_per_worker: int | None = None,
        reserve_bytes: int = 0,
    ):
        workers = workers_setting() if workers is None else max(1, int(workers))
        if max_items is not None:
            workers = min(workers, max(1, int(max_items)))
        if bytes_per_worker and workers > 1:
            workers = min(workers, max(1, (memory_available() - int(reserve_bytes)) // int(bytes_per_worker)))
        self.workers = workers if can_fork() else 1
        self.state = state
        self._executor: Any = None
        self._owns_state = False

    def __enter__(self) -> FoldPool:
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            if _STATE:
                raise RuntimeError("a FoldPool is already open in this process")
            _STATE.update(self.state)
            self._owns_state = True
            try:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("fork"), initializer=_one_thread_each
                )
                self._executor.submit(int).result()  # forks every worker now (fork starts them all at once)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._owns_state:
            _STATE.clear()
            self._owns_state = False

    @property
    def parallel(self) -> bool:
        """Whether items run in worker processes (the pool is open with more than one worker)."""
        return self._executor is not None

    def ordered(self, function: Callable[[dict[str, Any], Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(state, item)`` of each item, yielded in the items' order. In parallel every item is submitted
        now (the caller may work meanwhile) and closing the iterator early (a pruned trial) cancels the items not
        started and drops the results of those running; in one process each item runs when its result is asked for.
        A worker's exception is raised here, at its item."""
        if self._executor is None:
            return (function(self.state, item) for item in items)
        return self._results([self._executor.submit(_call, function, item) for item in items])

    @staticmethod
    def _results(futures: list[Any]) -> Iterator[Any]:
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
