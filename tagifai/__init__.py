"""tagifai: the Made With ML project-tagging workflows as a library.

Pure logic with plain Python types, dataframes and paths. This package never imports ``kfp``:
components (``components/``) and pipelines (``pipelines/``) build on it, not the other way round.
"""

import atexit as _atexit

__version__ = "0.1.0"


def _skip_final_collection() -> None:
    """At exit, move every object to the collector's permanent generation (:func:`gc.freeze`), unless DuckDB
    is loaded.

    The interpreter's finalisation runs full cyclic collections over every object still alive; in a process
    that imported scikit-learn, SciPy or MLflow that walk took 0.4-0.6 s of each step's and each CLI call's
    exit on this machine (issue 13: the optimize, train, evaluate and drift tasks of a ``continual`` run spent
    5.7 s between writing their outputs and exiting, 0.6 s with this). Frozen objects are still freed by
    reference counting; only cycles are left to the operating system, as at any exit. Registered when the
    package is first imported, so it runs after the exit handlers registered later (MLflow's): they still
    flush what they hold. DuckDB's bindings (nanobind) print "leaked instances" when the objects of its
    module are not collected before exit, so a process that loaded it keeps the full collection.
    """
    import gc
    import sys

    if "duckdb" not in sys.modules:
        gc.freeze()


_atexit.register(_skip_final_collection)
