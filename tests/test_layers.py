"""The one-way arrows between the layers (README, "Code map"), read from every module's imports.

Bottom to top: utils -> data, models, optimizer -> evaluation -> config -> engine -> studies ->
main.py, scripts/, bench/. A module imports only from its own layer or the layers below it,
nothing imports main.py, and no modules or packages import each other in a circle. config.py
sits above evaluation because it checks each name a user types against the registries below it
(models, data sets, optimizers, TTA modes, selection metrics); no layer below engine imports it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LAYERS = (
    ("utils",),
    ("data", "models", "optimizer"),
    ("evaluation",),
    ("config",),
    ("engine",),
    ("studies",),
    ("main", "scripts", "bench"),
)
LAYER_OF = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_name(root: Path, path: Path) -> str:
    """utils/errors.py -> "utils.errors"; data/__init__.py -> "data"; main.py -> "main"."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the layered packages under `root` (tests and virtual environments aside)."""
    paths = [path for package in LAYER_OF for path in
             ([root / f"{package}.py"] if (root / f"{package}.py").is_file() else sorted((root / package).rglob("*.py")))]
    return {module_name(root, path): path for path in paths if path.is_file()}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules that `path` imports, anywhere in the file (function bodies too):
    `from data import build_loader` is the package `data`, `from models import resnet` the
    module `models.resnet`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import engine.loop.x` is engine.loop
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def package_of(module: str) -> str:
    return module.split(".")[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run up the layers, and any import of main.py."""
    problems = []
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            if package_of(target) == "main":
                problems.append(f"{importer} imports main; import the module that holds what it needs")
            elif LAYER_OF[package_of(target)] > LAYER_OF[package_of(importer)]:
                problems.append(f"{importer} (layer {package_of(importer)}) imports {target}, "
                                f"which is in the higher layer {package_of(target)}")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (Tarjan), as a sorted list."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for importer, imported in graph.items():
        packages.setdefault(package_of(importer), set()).update(
            package_of(target) for target in imported if package_of(target) != package_of(importer))
    return packages


def check_layers(root: Path) -> list[str]:
    """Every problem with the imports under `root`, one line each; [] when the arrows hold."""
    graph = import_graph(root)
    return (layer_violations(graph)
            + [f"modules import each other in a circle: {', '.join(group)}" for group in cycles(graph)]
            + [f"packages import each other in a circle: {', '.join(group)}"
               for group in cycles(package_graph(graph))])


def test_the_project_imports_only_down_the_layers_and_in_no_circle():
    graph = import_graph(REPO)
    assert {"main", "config", "engine.loop", "evaluation.evaluate", "studies.throughput", "utils.errors",
            "scripts.sweep", "bench.train"} <= graph.keys()  # the check sees the whole project
    assert check_layers(REPO) == []


def test_main_py_is_imported_by_nothing_and_imports_the_layers_below():
    graph = import_graph(REPO)
    assert not [importer for importer, imported in graph.items() if "main" in imported]
    assert {"engine.loop", "engine.build", "studies.throughput"} <= graph["main"]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_an_import_up_the_layers_is_reported(tmp_path):
    root = write_tree(tmp_path, {
        "utils/__init__.py": "", "utils/helper.py": "def helper():\n    from engine.loop import run\n",
        "engine/__init__.py": "", "engine/loop.py": "from utils.helper import helper\n\n\ndef run():\n    pass\n",
        "data/__init__.py": "import main\n", "main.py": "import engine.loop\n",
    })
    assert check_layers(root) == [
        "data imports main; import the module that holds what it needs",
        "utils.helper (layer utils) imports engine.loop, which is in the higher layer engine",
        "modules import each other in a circle: engine.loop, utils.helper",
        "packages import each other in a circle: engine, utils",
    ]


def test_a_circle_inside_one_layer_is_reported(tmp_path):
    root = write_tree(tmp_path, {
        "data/__init__.py": "", "data/build.py": "from models.build import build_model\n",
        "models/__init__.py": "", "models/build.py": "from data import build\n",
    })
    assert check_layers(root) == ["modules import each other in a circle: data.build, models.build",
                                  "packages import each other in a circle: data, models"]


@pytest.mark.parametrize("source, expected", [
    ("import engine.loop\n", {"engine.loop"}),
    ("from engine import loop\n", {"engine.loop"}),
    ("from engine.loop import train_one_epoch\n", {"engine.loop"}),
    ("from engine import build_things\n", {"engine"}),
    ("import os\nfrom torch import nn\n", set()),
])
def test_imports_are_resolved_to_the_project_module_they_load(tmp_path, source, expected):
    root = write_tree(tmp_path, {"engine/__init__.py": "", "engine/loop.py": "", "studies/probe.py": source})
    assert import_graph(root)["studies.probe"] == expected
