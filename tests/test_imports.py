"""Layering: a user of the linear estimators never waits on torch's import."""

import subprocess
import sys


def test_linear_workflow_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from amrlearn import AMRLogisticRegression\n"
        "from amrlearn.metrics import margin_report\n"
        "X = np.random.default_rng(0).random((40, 3)); y = (X[:, 0] > .5).astype(int)\n"
        "margin_report(AMRLogisticRegression().fit(X, y), X, y)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _module_graph():
    """Which amrlearn module imports which, top-level and function-level imports alike.

    An import of an ancestor package (``from .. import __version__``) is not an edge:
    Python has imported every ancestor before the module itself.
    """
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "amrlearn"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = (path, is_package)

    def resolve(name):
        """The module that ``name`` is, or the module that defines it."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = ".".join(base[: len(base) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        edges = {resolve(t) for t in targets if t.split(".")[0] == "amrlearn"}
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = sorted(edges - ancestors - {name, ""})
    return graph


def _find_cycle(graph):
    """A list of modules that import each other in a circle, or ``None``."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_cycle():
    assert _find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_no_import_cycle_in_amrlearn():
    graph = _module_graph()
    assert "amrlearn.metrics" in graph["amrlearn.experiments.figure1"]  # it sees imports
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_library_code_never_sets_the_matplotlib_backend():
    """Only the ``amrlearn`` command, an application, may call ``matplotlib.use``; the
    docstring examples (strings, not code) may too."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "amrlearn"
    callers = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            func = getattr(node, "func", None)
            if (
                isinstance(node, ast.Call)
                and isinstance(func, ast.Attribute)
                and func.attr == "use"
                and isinstance(func.value, ast.Name)
                and func.value.id == "matplotlib"
            ):
                callers.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert callers == []
