"""The package mirrors the DAG: its import graph (every import, however late) has no circle, imports only point
down the layers, and each stage's code deps in dvc.yaml are exactly the folders its entrypoint can reach."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Bottom to top. A module may import its own folder and the folders below; folders on one line are siblings,
# which never import each other. pokedex/__init__.py (paths, telemetry off) sits under everything; the
# top-level modules (the `pokedex` command) over everything.
LAYERS = [["core"], ["data"], ["model"], ["recognise"], ["train", "evaluate", "deploy"], ["label"]]  # label: suggest and file your pictures
MACHINERY = ["stages/__init__.py", "pokedex/__init__.py", "pokedex/core"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in ("pokedex", "stages") for p in (ROOT / folder).rglob("*.py")
            if "__pycache__" not in p.parts}


def imports_of(path: Path, modules: dict[str, Path], module_level: bool = False) -> set[str]:
    """Project modules `path` imports anywhere in its body (module level, in functions, `from X import module`), or
    with `module_level` only those its top-level statements import (what runs when it is imported)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # `import a.b.c` also runs a/__init__ and a/b/__init__
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules)
    own = module_name(path).split(".")
    ancestors = {".".join(own[:i]) for i in range(1, len(own) + 1)}  # a package's __init__ runs before its modules
    return found - ancestors


def import_graph(module_level: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules, module_level) for name, path in modules.items()}


def layer(module: str) -> tuple[int, str]:
    """(height, folder) of a pokedex module."""
    parts = module.split(".")
    if parts == ["pokedex"]:
        return -1, ""
    if len(parts) == 2 and parts[0] == "pokedex" and not (ROOT / "pokedex" / parts[1]).is_dir():
        return len(LAYERS), ""  # cli, predict, report
    for height, folders in enumerate(LAYERS):
        if parts[1] in folders:
            return height, parts[1]
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS in tests/test_layout.py")


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def folder_dep(module: str) -> str:
    """The dvc.yaml dep that covers a module: its folder under pokedex/, or its own file."""
    parts = module.split(".")
    if parts[0] == "pokedex" and len(parts) > 1 and (ROOT / "pokedex" / parts[1]).is_dir():
        return f"pokedex/{parts[1]}"
    path = ROOT / Path(*parts)
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(ROOT).as_posix()


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 40 and graph["pokedex.evaluate.evaluate"] >= {"pokedex.recognise.openset", "pokedex.core.io"}
    assert not (found := cycle(graph)), "import circle: " + " -> ".join(found)


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_imports_only_point_down_the_layers():
    wrong = []
    for module, imported in import_graph().items():
        if not module.startswith("pokedex"):
            continue
        height, folder = layer(module)
        for other in imported:
            other_height, other_folder = layer(other)
            if other_height > height or (other_height == height and other_folder != folder):
                wrong.append(f"{module} imports {other}")
    assert not wrong, "imports that point up or sideways (see LAYERS):\n" + "\n".join(sorted(wrong))


def test_what_reads_a_model_never_loads_the_training_code():
    """Models are built, loaded and run on their own floor (pokedex/model/): evaluate, deploy, the labelling tools
    and the `pokedex` command reach nothing of pokedex/train/, so a change to training reruns none of their stages."""
    graph = import_graph()
    readers = [m for m in graph if m.split(".")[:2] in (["pokedex", "recognise"], ["pokedex", "evaluate"],
                                                         ["pokedex", "deploy"], ["pokedex", "label"])]
    readers += ["pokedex.predict", "pokedex.report"]
    assert len(readers) > 20
    for module in readers:
        reached = sorted(m for m in reachable(graph, module) if m.startswith("pokedex.train"))
        assert not reached, f"{module} reaches {reached}"


def test_a_picture_is_answered_in_one_home():
    """Scores, views, features, enrolled species and the input size live in pokedex/recognise/: what answers your
    pictures (predict, suggest, label) reaches nothing of the measuring floor (pokedex/evaluate/)."""
    import pokedex.recognise.enroll
    import pokedex.recognise.openset
    import pokedex.recognise.scores
    import pokedex.recognise.views

    graph = import_graph()
    for module in ["pokedex.predict"] + [m for m in graph if m.startswith("pokedex.label")]:
        reached = sorted(m for m in reachable(graph, module) if m.startswith("pokedex.evaluate"))
        assert not reached, f"{module} reaches {reached}"
    homes = {f.__module__ for f in (pokedex.recognise.scores.class_scores, pokedex.recognise.scores.input_size,
                                    pokedex.recognise.views.crop_is_surer, pokedex.recognise.openset.Enrolled,
                                    pokedex.recognise.enroll.enroll)}
    assert {m.split(".")[1] for m in homes} == {"recognise"}


def test_each_stage_depends_on_exactly_the_code_folders_it_can_reach():
    """A static twin of test_pipeline's import tracer: fast, and it also sees imports no test run takes."""
    graph = import_graph()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert len(stages) == len(list((ROOT / "stages").glob("*.py"))) - 1
    for name, spec in stages.items():
        entry = spec["cmd"].split()[-1]  # python -m stages.X
        loaded = reachable(graph, entry)
        loaded |= {".".join(m.split(".")[:i]) for m in loaded for i in range(1, m.count(".") + 1)}  # packages
        needed = {folder_dep(m) for m in loaded}
        listed = {dep for dep in spec["deps"] if dep.startswith(("pokedex", "stages"))}
        assert listed == needed, f"{name}: dvc.yaml lists {sorted(listed - needed)} it cannot load and lacks " \
                                 f"{sorted(needed - listed)}"
        assert set(MACHINERY) <= listed
