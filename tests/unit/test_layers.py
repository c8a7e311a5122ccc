"""The layers hold (docs/architecture.md): each imports only the layers below it, and no module imports
another that imports it back, counting imports inside functions too."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Layer of each top-level package: a module may import only its own layer and the ones below.
LAYERS = {"tagifai": 1, "components": 2, "pipelines": 3, "tagifai_cli": 4}


def _modules() -> dict[str, Path]:
    mods = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = path
    return mods


def _imports(path: Path) -> set[str]:
    """Every absolute import in ``path``, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {t for n in _imports(p) if (t := resolve(n)) and t != m} for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(_graph()) == []


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_layer_imports_only_the_layers_below():
    wrong = []
    for module, targets in _graph().items():
        layer = LAYERS[module.split(".")[0]]
        wrong += [f"{module} -> {t}" for t in targets if LAYERS[t.split(".")[0]] > layer]
    assert wrong == []


def test_the_library_never_imports_kfp():
    mods = _modules()
    users = [
        m
        for m, p in mods.items()
        if m.startswith("tagifai.") or m == "tagifai"
        if any(n == "kfp" or n.startswith("kfp.") for n in _imports(p))
    ]
    assert users == []
