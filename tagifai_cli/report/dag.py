"""The run's pipeline as a graph of its container tasks, laid out in layers and drawn as inline SVG.

The graph comes from the compiled pipeline spec (``dependentTasks`` of every task, nested pipelines
expanded: a task that depends on a nested pipeline depends on that pipeline's last tasks), else from the
order in which the steps ran. The layout is the usual layered one: each task on the layer after its
latest dependency, edges that skip layers routed through placeholder points, the order within a layer
by the mean position of the dependencies (a few sweeps), x by those positions without overlaps.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

NODE_W, NODE_H = 230, 58
LAYER_GAP, NODE_GAP, DUMMY_W, MARGIN = 44, 26, 12, 16
#: ``cached``: reused from an earlier run on the same inputs (kfp.local's cache), its outputs are that run's.
STATUS_MARK = {"succeeded": "\u2714", "failed": "\u2718", "not run": "\u2013", "running": "\u2026", "cached": "\u21ba"}


@dataclass
class Node:
    id: str  # the path of task keys from the root ("dataops/sync")
    key: str  # the task key in its own DAG
    name: str  # the display name
    group: list[str] = field(default_factory=list)  # the display names of the enclosing nested pipelines
    image: str = ""
    preds: list[str] = field(default_factory=list)
    task: str = ""  # the run folder of the task (kfp.local names it after the key)
    status: str = "not run"
    seconds: float | None = None
    error: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "key", "name", "group", "image", "preds")}


def _topological(tasks: dict) -> list[str]:
    deps = {k: [d for d in t.get("dependentTasks", []) if d in tasks] for k, t in tasks.items()}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(tasks):
        ready = sorted(k for k in tasks if k not in done and all(d in done for d in deps[k]))
        if not ready:  # a cycle cannot be compiled; keep the rest in name order rather than loop
            ready = sorted(k for k in tasks if k not in done)
        order += ready
        done.update(ready)
    return order


def graph_from_spec(spec: dict) -> list[Node]:
    """The container tasks of a compiled pipeline spec (a dict), nested pipelines expanded, in topological order."""
    components = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    nodes: list[Node] = []

    def expand(dag: dict, prefix: str, group: list[str], inherited: set[str]) -> set[str]:
        tasks = dag.get("tasks", {})
        last: dict[str, set[str]] = {}
        depended = {d for t in tasks.values() for d in t.get("dependentTasks", [])}
        for key in _topological(tasks):
            task = tasks[key]
            deps = [d for d in task.get("dependentTasks", []) if d in tasks]
            preds = set().union(*(last[d] for d in deps)) if deps else set(inherited)
            component = components.get(task.get("componentRef", {}).get("name", ""), {})
            name = task.get("taskInfo", {}).get("name", key)
            if "dag" in component:
                last[key] = expand(component["dag"], f"{prefix}{key}/", [*group, name], preds)
            else:
                executor = executors.get(component.get("executorLabel", ""), {})
                image = executor.get("container", {}).get("image", "")
                nodes.append(Node(f"{prefix}{key}", key, name, list(group), image, sorted(preds)))
                last[key] = {f"{prefix}{key}"}
        ends = [last[k] for k in tasks if k not in depended]
        return set().union(*ends) if ends else set(inherited)

    expand(spec.get("root", {}).get("dag", {}), "", [], set())
    return nodes


def graph_from_steps(steps: list[dict]) -> list[Node]:
    """A chain of the steps in the order they ran (when the pipeline spec is not at hand)."""
    nodes: list[Node] = []
    for step in steps:
        task = step.get("task") or step["name"]
        nodes.append(Node(task, task, step.get("name") or task, preds=[nodes[-1].id] if nodes else []))
    return nodes


def attach(nodes: list[Node], steps: list[dict]) -> list[Node]:
    """Give each node the status, duration and error of the step that ran it (by task key, else display name);
    steps that match no node are added at the end (a task the spec does not show)."""
    keys = [n.key for n in nodes]
    names = [n.name for n in nodes]
    used: set[int] = set()
    for node in nodes:
        candidates = [i for i, s in enumerate(steps) if i not in used and s.get("task") == node.key]
        if len(candidates) != 1 or keys.count(node.key) != 1:
            by_name = [i for i, s in enumerate(steps) if i not in used and s.get("name") == node.name]
            candidates = by_name if len(by_name) == 1 and names.count(node.name) == 1 else []
        if candidates:
            step = steps[candidates[0]]
            used.add(candidates[0])
            node.task = step.get("task") or node.key
            node.status = step.get("status") or "unknown"
            node.seconds = step.get("seconds")
            node.error = step.get("error") or ""
    for i, step in enumerate(steps):
        if i not in used:
            task = step.get("task") or step["name"]
            node = Node(f"~{task}", task, step.get("name") or task, task=task, status=step.get("status") or "unknown")
            node.seconds, node.error = step.get("seconds"), step.get("error") or ""
            nodes.append(node)
    return nodes


@dataclass
class Layout:
    """Node centres, edge polylines and the drawing's size."""

    x: dict[str, float]
    y: dict[str, float]
    edges: list[tuple[str, str, list[tuple[float, float]]]]
    width: float
    height: float
    layers: list[list[str]]


def layers_of(nodes: list[Node]) -> dict[str, int]:
    """The layer of each node: one after its latest dependency (0 without any)."""
    by_id = {n.id: n for n in nodes}
    layer: dict[str, int] = {}

    def visit(node_id: str, seen: frozenset = frozenset()) -> int:
        if node_id not in layer:
            preds = [p for p in by_id[node_id].preds if p in by_id and p not in seen]
            layer[node_id] = 1 + max((visit(p, seen | {node_id}) for p in preds), default=-1)
        return layer[node_id]

    for node in nodes:
        visit(node.id)
    return layer


def layout(nodes: list[Node], sweeps: int = 4) -> Layout:
    """A layered top-to-bottom layout of ``nodes`` (see the module docstring)."""
    by_id = {n.id: n for n in nodes}
    layer = layers_of(nodes)
    preds: dict[str, list[str]] = {n.id: [] for n in nodes}
    chains: list[tuple[str, str, list[str]]] = []  # (source, target, ids from source to target via placeholders)
    for node in nodes:
        for p in node.preds:
            if p not in by_id:
                continue
            chain = [p]
            for level in range(layer[p] + 1, layer[node.id]):
                dummy = f"{p}->{node.id}@{level}"
                layer[dummy] = level
                preds[dummy] = [chain[-1]]
                chain.append(dummy)
            preds[node.id].append(chain[-1])
            chains.append((p, node.id, [*chain, node.id]))
    succs: dict[str, list[str]] = {k: [] for k in preds}
    for k, ps in preds.items():
        for p in ps:
            succs[p].append(k)
    depth = max(layer.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for k in [n.id for n in nodes] + [k for k in preds if k not in by_id]:
        layers[layer[k]].append(k)
    pos = {k: i for row in layers for i, k in enumerate(row)}

    def sort_by(row: list[str], neighbours: dict[str, list[str]]) -> None:
        def key(k: str) -> float:
            ns = neighbours[k]
            return sum(pos[n] for n in ns) / len(ns) if ns else pos[k]

        row.sort(key=key)
        pos.update({k: i for i, k in enumerate(row)})

    for _ in range(sweeps):
        for row in layers[1:]:
            sort_by(row, preds)
        for row in reversed(layers[:-1]):
            sort_by(row, succs)

    def width(k: str) -> float:
        return NODE_W if k in by_id else DUMMY_W

    x: dict[str, float] = {}
    for row in layers:
        wanted = [sum(x[p] for p in preds[k]) / len(preds[k]) if preds[k] else None for k in row]
        placed: list[float] = []
        for i, k in enumerate(row):
            want = wanted[i] if wanted[i] is not None else (placed[-1] + 1 if placed else 0.0)
            if placed:
                want = max(want, placed[-1] + (width(row[i - 1]) + width(k)) / 2 + NODE_GAP)
            placed.append(want)
        offsets = [w - p for w, p in zip(wanted, placed, strict=True) if w is not None]
        shift = sum(offsets) / len(offsets) if offsets else -(placed[0] + placed[-1]) / 2 if placed else 0.0
        x.update({k: p + shift for k, p in zip(row, placed, strict=True)})
    left = min((x[k] - width(k) / 2 for k in x), default=0.0)
    x = {k: v - left + MARGIN for k, v in x.items()}
    y = {k: MARGIN + 22 + layer[k] * (NODE_H + LAYER_GAP) + NODE_H / 2 for k in x}
    edges = []
    for source, target, chain in chains:
        points = [(x[source], y[source] + NODE_H / 2)]
        points += [(x[k], y[k]) for k in chain[1:-1]]
        points.append((x[target], y[target] - NODE_H / 2))
        edges.append((source, target, points))
    w = max((x[k] + width(k) / 2 for k in x), default=0.0) + MARGIN
    h = MARGIN * 2 + 22 + depth * (NODE_H + LAYER_GAP) - LAYER_GAP + 10
    return Layout(x, y, edges, w, h, layers)


def _path(points: list[tuple[float, float]]) -> str:
    (x0, y0), rest = points[0], points[1:]
    d = f"M{x0:.1f},{y0:.1f}"
    for x1, y1 in rest:
        mid = (y0 + y1) / 2
        d += f" C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}"
        x0, y0 = x1, y1
    return d


def _short_image(image: str) -> str:
    return image.rsplit("/", 1)[-1] if image else "no image"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def svg(nodes: list[Node], lay: Layout, image_note: str = "") -> str:
    """The drawing: nested pipelines as dashed boxes, tasks as boxes coloured by status, edges with arrows."""
    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" aria-label="pipeline graph" '
        f'width="{lay.width:.0f}" height="{lay.height:.0f}" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>',
    ]
    groups: dict[tuple[str, ...], list[Node]] = {}
    for node in nodes:
        for depth in range(1, len(node.group) + 1):
            groups.setdefault(tuple(node.group[:depth]), []).append(node)
    for path, members in sorted(groups.items(), key=lambda g: len(g[0])):
        pad = 14 - 4 * (len(path) - 1)
        x0 = min(lay.x[n.id] for n in members) - NODE_W / 2 - pad
        x1 = max(lay.x[n.id] for n in members) + NODE_W / 2 + pad
        y0 = min(lay.y[n.id] for n in members) - NODE_H / 2 - pad - 14
        y1 = max(lay.y[n.id] for n in members) + NODE_H / 2 + pad
        out.append(
            f'<g class="group" data-group="{esc("/".join(path))}"><rect x="{x0:.1f}" y="{y0:.1f}" '
            f'width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" rx="10"/>'
            f'<text x="{x0 + 10:.1f}" y="{y0 + 15:.1f}">{esc(path[-1])}</text></g>'
        )
    for source, target, points in lay.edges:
        out.append(
            f'<path class="edge" data-from="{esc(source)}" data-to="{esc(target)}" d="{_path(points)}" '
            'marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        cx, cy = lay.x[node.id], lay.y[node.id]
        x0, y0 = cx - NODE_W / 2, cy - NODE_H / 2
        status = node.status
        css = status.replace(" ", "-")
        seconds = f" \u00b7 {node.seconds:.1f} s" if isinstance(node.seconds, int | float) else ""
        tip = [node.name, f"task {node.task or node.key}: {status}{seconds}", f"image: {node.image or 'none'}"]
        if image_note:
            tip.append(image_note)
        if node.error:
            tip.append(node.error)
        out.append(
            f'<g class="node st-{css}" data-step="{esc(node.name)}" data-task="{esc(node.task or node.key)}" '
            f'data-status="{esc(status)}"><title>{esc(chr(10).join(tip))}</title>'
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text class="name" x="{x0 + 10:.1f}" y="{y0 + 18:.1f}">{esc(_clip(node.name, 26))}</text>'
            f'<text class="status" x="{x0 + 10:.1f}" y="{y0 + 35:.1f}">'
            f"{STATUS_MARK.get(status, '?')} {esc(status)}{esc(seconds)}</text>"
            f'<text class="image" x="{x0 + 10:.1f}" y="{y0 + 50:.1f}">{esc(_clip(_short_image(node.image), 34))}</text>'
            "</g>"
        )
    out.append("</svg>")
    return "\n".join(out)
