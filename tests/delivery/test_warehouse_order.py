"""One writer for the warehouse on a cluster: in every compiled pipeline (both flavours), no two tasks that
open the warehouse can run at the same time.

DuckDB, the embedded warehouse (one file on the cluster's volume), lets one process write it and no other
open it meanwhile. So every pair of warehouse tasks must be ordered by the DAG's dependencies: walking down
from the root DAG into nested pipelines and conditions, the two tasks' paths part at one DAG, and there one
of the two tasks there must depend, transitively, on the other (a task of a nested pipeline or condition
starts after that task's dependencies and ends before its dependents start). Two branches of one condition
(``x == true`` and ``x == false``) never both run, so they need no order.
"""

from __future__ import annotations

import itertools
import re

import pytest
import yaml
from loopback import COMPILED

PIPELINES = ["continual", "dataops", "mlops", "sensor"]
TARGETS = ["kubeflow", "vertex"]
#: The components that open the warehouse: each takes a ``warehouse`` parameter (validate_dataset reads its
#: artifact; optimize, train and evaluate use MLflow and Optuna only).
WAREHOUSE_FUNCTIONS = {"sync", "validate_table", "transform", "extract", "drift", "sense", "advance_watermark"}
#: Take a ``warehouse`` parameter to find the run lease beside the file, and never open the file itself.
LEASE_FUNCTIONS = {"hold_warehouse", "notify"}


def _spec(target: str, name: str) -> dict:
    return next(yaml.safe_load_all((COMPILED / target / f"{name}.yaml").read_text()))


def _function(spec: dict, component: dict) -> str:
    args = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]["args"]
    return args[args.index("--function_to_execute") + 1]


def warehouse_tasks(spec: dict) -> list[tuple[tuple[str, ...], str]]:
    """``(path, function)`` of every task that opens the warehouse; ``path``: the task keys from the root DAG."""
    found = []

    def walk(dag: dict, path: tuple[str, ...]) -> None:
        for key, task in dag.get("tasks", {}).items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"], (*path, key))
            elif "warehouse" in component.get("inputDefinitions", {}).get("parameters", {}) and (
                (function := _function(spec, component)) not in LEASE_FUNCTIONS
            ):
                found.append(((*path, key), function))

    walk(spec["root"]["dag"], ())
    return found


def _dag_at(spec: dict, path: tuple[str, ...]) -> dict:
    dag = spec["root"]["dag"]
    for key in path:
        dag = spec["components"][dag["tasks"][key]["componentRef"]["name"]]["dag"]
    return dag


def _before(dag: dict, first: str, second: str) -> bool:
    """Whether ``second`` depends on ``first``, directly or through other tasks of ``dag``."""
    seen, todo = set(), [second]
    while todo:
        for dep in dag["tasks"][todo.pop()].get("dependentTasks", []):
            if dep == first:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


_CONDITION = re.compile(r"^(.*) == (true|false)$")


def _exclusive(dag: dict, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are branches of one condition: ``x == true`` and ``x == false``."""
    conditions = [dag["tasks"][k].get("triggerPolicy", {}).get("condition", "") for k in (a, b)]
    matches = [_CONDITION.match(c.strip()) for c in conditions]
    return all(matches) and matches[0][1] == matches[1][1] and matches[0][2] != matches[1][2]


def unordered_pairs(spec: dict) -> list[str]:
    """The pairs of warehouse tasks that may run at the same time (a readable line each)."""
    out = []
    for (p, f), (q, g) in itertools.combinations(warehouse_tasks(spec), 2):
        common = next(i for i, (x, y) in enumerate(zip(p, q, strict=False)) if x != y)
        dag = _dag_at(spec, p[:common])
        a, b = p[common], q[common]
        if not (_before(dag, a, b) or _before(dag, b, a) or _exclusive(dag, a, b)):
            out.append(f"{'/'.join(p)} ({f}) || {'/'.join(q)} ({g})")
    return out


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", PIPELINES)
def test_no_two_warehouse_tasks_can_overlap(target, name):
    spec = _spec(target, name)
    tasks = warehouse_tasks(spec)
    assert tasks and {f for _, f in tasks} <= WAREHOUSE_FUNCTIONS
    assert unordered_pairs(spec) == []


def test_the_warehouse_tasks_are_the_components_that_take_a_warehouse():
    """The walk finds them by their ``warehouse`` parameter; these are the components known to open it."""
    found = {f for name in PIPELINES for _, f in warehouse_tasks(_spec("kubeflow", name))}
    assert found == WAREHOUSE_FUNCTIONS


def test_dataops_is_one_chain_in_the_order_of_the_data():
    spec = _spec("kubeflow", "dataops")
    paths = [path for path, _ in warehouse_tasks(spec)]  # not the fingerprints: they only read the sources
    assert paths and {p[:-1] for p in paths} == {("exit-handler-1",)}  # all under the exit handler (notify)
    dag = _dag_at(spec, paths[0][:-1])
    names = {key: task["taskInfo"]["name"] for key, task in dag["tasks"].items()}
    keys = [path[-1] for path in paths]
    order = sorted(keys, key=lambda k: sum(_before(dag, other, k) for other in keys))
    # each sync waits for its source's fingerprint (its cache key)
    assert _before(dag, "fingerprint", "sync") and _before(dag, "fingerprint-2", "sync-2")
    assert [names[k] for k in order] == [
        "sync-projects",
        "sync-tags",
        "validate-projects",
        "validate-tags",
        "transform",
        "validate-labeled-projects",
    ]


def test_the_walk_finds_overlaps():
    """The check itself: the dataops DAG as it was (sync-tags beside validate-projects, the two validations
    side by side) fails it, and so does drift unordered beside dataops, and a branch no longer exclusive."""
    spec = _spec("kubeflow", "dataops")
    tasks = _dag_at(spec, ("exit-handler-1",))["tasks"]
    tasks["validate-table"]["dependentTasks"] = ["sync"]
    tasks["validate-table-2"]["dependentTasks"] = ["sync-2"]
    tasks["transform"]["dependentTasks"] = ["validate-table", "validate-table-2"]
    assert unordered_pairs(spec) == [
        "exit-handler-1/sync-2 (sync) || exit-handler-1/validate-table (validate_table)",
        "exit-handler-1/validate-table (validate_table) || exit-handler-1/validate-table-2 (validate_table)",
    ]
    continual = _spec("vertex", "continual")
    del _dag_at(continual, ("exit-handler-1",))["tasks"]["drift"]["dependentTasks"]
    overlaps = unordered_pairs(continual)
    # the six warehouse tasks of dataops beside drift, and the last validation beside extract (which takes
    # transform's Dataset, so it follows transform, but follows the validation only through drift)
    assert len(overlaps) == 7 and "exit-handler-1/drift (drift) || exit-handler-1/sync (sync)" in overlaps
    assert "exit-handler-1/extract (extract) || exit-handler-1/validate-table-3 (validate_table)" in overlaps
    sensor = _spec("vertex", "sensor")
    branch = sensor["components"]["comp-condition-2"]["dag"]["tasks"]["condition-4"]["triggerPolicy"]
    branch["condition"] = branch["condition"].replace("== false", "== true")  # no longer the other branch
    inner = "exit-handler-1/condition-2"
    assert unordered_pairs(sensor) == [
        f"{inner}/condition-3/advance-watermark (advance_watermark) || "
        f"{inner}/condition-4/advance-watermark-2 (advance_watermark)",
        f"{inner}/condition-3/extract (extract) || {inner}/condition-4/advance-watermark-2 (advance_watermark)",
    ]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", PIPELINES)
def test_every_warehouse_task_waits_for_the_run_lease(target, name):
    """Between runs: the first task takes the warehouse's run lease (tagifai.lease; notify, the exit task, gives
    it back), and every warehouse task of the run comes after it, so two overlapping runs take turns."""
    spec = _spec(target, name)
    group = ("exit-handler-1",)
    dag = _dag_at(spec, group)
    assert "hold-warehouse" in dag["tasks"]
    for path, function in warehouse_tasks(spec):
        assert path[: len(group)] == group, path
        assert _before(dag, "hold-warehouse", path[len(group)]), f"{'/'.join(path)} ({function}) may start first"
