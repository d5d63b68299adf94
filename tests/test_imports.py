"""Layering: imports point down the layers of docs/architecture.md, with no cycle."""

import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path


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


ROOT = Path(__file__).resolve().parents[1] / "amrlearn"

# The layers of docs/architecture.md, highest first: (the label that starts the layer's
# line in the document's diagram, the modules of the layer). A pattern ending in "*" is a
# package with all its modules. Every module is in exactly one layer, and may import only
# its own layer and those below.
_EXP, _LIN, _NN, _SVM = (f"amrlearn.{p}." for p in ("experiments", "linear_model", "neural", "svm"))
LAYERS = [
    ("cli.py", ["amrlearn", "amrlearn.cli"]),
    ("evaluation/", ["amrlearn.evaluation*"]),
    (
        "experiments/",
        ["amrlearn.experiments"]
        + [_EXP + m for m in ("_run", "demo", "figure1", "figures", "frontier", "certified")]
        + [_EXP + "table1", _EXP + "table2"],
    ),
    ("experiments/_runner.py", [_EXP + "_runner"]),
    ("experiments/_estimate.py", [_EXP + "_estimate"]),
    ("experiments/_recipe.py", [_EXP + "_recipe"]),
    ("experiments/_methods.py", [_EXP + "_methods"]),
    (
        "experiments/_callbacks.py",
        [_EXP + m for m in ("_callbacks", "_common", "_paper", "_summaries", "_logistic_path")]
        + [_EXP + "_beyond", _EXP + "_method"],
    ),
    ("plotting/", ["amrlearn.plotting*"]),
    (
        "linear_model/  svm/  neural/",
        ["amrlearn.linear_model", _LIN + "_amr_logistic", _LIN + "_binary"]
        + ["amrlearn.svm", _SVM + "_hard_margin", "amrlearn.neural", _NN + "models"]
        + [_NN + m for m in ("_base", "_net", "_regularized", "_certified", "_deepdefense")]
        + [_NN + m for m in ("_mmr", "_callbacks", "_checkpoint", "_data")],
    ),
    (
        "neural/_penalty.py",
        [_NN + m for m in ("_penalty", "_amrpenalty", "_ddpenalty", "_regions", "_distribution")]
        + [_NN + "_features", _NN + "_lipschitz"],
    ),
    ("metrics/", ["amrlearn.metrics*"]),
    ("attacks/", ["amrlearn.attacks*"]),
    (
        "_math/",
        ["amrlearn._math*", _LIN + "_cccp", _LIN + "_multinomial", _NN + "_penalties"]
        + [_NN + "_lazy", _SVM + "_qp", _SVM + "_ipm", _SVM + "_active_set"],
    ),
    ("datasets/  utils/", ["amrlearn.datasets*", "amrlearn.utils*"]),
    ("_paper.py, exceptions.py", ["amrlearn._paper", "amrlearn.exceptions", "amrlearn._version"]),
]


def _module_graph(root=ROOT):
    """Which amrlearn module imports which, top-level and function-level imports alike.

    An import of an ancestor package (``from .. import __version__``) is not an edge:
    Python has imported every ancestor before the module itself.
    """
    import ast

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


def _layers_of(modules, layers=LAYERS):
    """The index of each module's layer (0: the highest), and the modules in no layer or
    in several."""
    index, misplaced = {}, []
    for module in sorted(modules):
        found = [
            i
            for i, (_, patterns) in enumerate(layers)
            for p in patterns
            if module == p or (p.endswith("*") and fnmatchcase(module, p[:-1] + "*"))
        ]
        if len(found) == 1:
            index[module] = found[0]
        else:
            misplaced.append(f"{module} in {len(found)} layers")
    return index, misplaced


def _upward_imports(graph, layers=LAYERS):
    """Every import that points to a higher layer, as ``"a (its layer) -> b (its layer)"``."""
    index, _ = _layers_of(graph, layers)
    return [
        f"{a} ({layers[index[a]][0]}) -> {b} ({layers[index[b]][0]})"
        for a in sorted(graph)
        for b in graph[a]
        if a in index and b in index and index[b] < index[a]
    ]


def test_every_module_is_in_exactly_one_layer():
    graph = _module_graph()
    assert {"amrlearn.neural._penalty", "amrlearn._math._margin"} <= set(graph)
    index, misplaced = _layers_of(graph)
    assert misplaced == []
    unused = [
        p for _, patterns in LAYERS for p in patterns if not _layers_of(graph, [("", [p])])[0]
    ]
    assert unused == []  # no entry of the table names a module that is gone


def test_imports_point_down_the_layers_of_the_architecture():
    assert _upward_imports(_module_graph()) == []


def test_the_layers_stand_in_the_diagram_of_the_architecture_in_this_order():
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    diagram = text.split("## Layers", 1)[1].split("```")[1].splitlines()
    starts = [
        next((i for i, line in enumerate(diagram) if line.startswith(label)), None)
        for label, _ in LAYERS
    ]
    assert None not in starts, [label for (label, _), i in zip(LAYERS, starts) if i is None]
    assert starts == sorted(starts)


def test_the_layer_check_fails_on_a_planted_upward_import(tmp_path):
    """A copy of the package with one function-level import from utils up to a net, and
    one new module that no layer holds: both are caught."""
    import shutil

    copy = tmp_path / "amrlearn"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "utils" / "_math.py", "a") as f:
        f.write("\n\ndef _planted():\n    from ..neural import _net\n\n    return _net\n")
    (copy / "metrics" / "_planted.py").write_text("")
    (copy / "neural" / "_planted.py").write_text("")
    graph = _module_graph(copy)
    assert _upward_imports(graph) == [
        "amrlearn.utils._math (datasets/  utils/) -> amrlearn.neural._net "
        "(linear_model/  svm/  neural/)"
    ]
    assert _layers_of(graph)[1] == ["amrlearn.neural._planted in 0 layers"]
    assert _upward_imports(_module_graph()) == []  # the copy, not the package, was changed


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
