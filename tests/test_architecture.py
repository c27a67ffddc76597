"""The shape of ``jrl/``, read from its source (``ast``; nothing is imported or compiled): imports
run one way, down the floors of ``ARCHITECTURE`` below, with no circle; no function is over 200
lines; nothing asks *which* algorithm module or environment it holds instead of asking the
contract. The checkers are tested on small planted packages too, so a check that sees nothing
fails here rather than passing quietly.

An import is an arrow whether it is at the top of a module or inside a function, absolute or
relative. Not arrows: names imported by a string at run time, which is how the upper floors are
reached late on purpose (``jrl/__init__.py``'s ``__getattr__`` for ``jrl.sweep``, Gymnasium's entry
points ``"jrl.wrappers.gymnasium:..."``, the registry's ``"jrl.wrappers.gymnax"`` namespace), and
imports of other distributions (optional extras), which are not in ``jrl/``.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The floors of jrl, bottom first (see ARCHITECTURE.md): a module may import modules of its own
#: floor and of the floors below, never one above. A module belongs to the floor of the longest
#: name here that it is, or that it lies inside; a new top-level module must be given a floor.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("jrl._validation", "jrl._numerics", "jrl._extras", "jrl._version", "jrl.spaces"),
    ("jrl.envs",),  # the registry knows every environment, so it never reaches up
    ("jrl.parallel", "jrl.planning", "jrl.evaluate"),
    ("jrl.wrappers",),  # the outside world; only the command line imports it (below)
    ("jrl.algorithms",),
    ("jrl.text", "jrl.export"),
    ("jrl.experiment",),
    ("jrl",),  # the package's face: the experiment floor only by name, in __getattr__
    ("jrl.cli",),
)

#: Who may import ``jrl.wrappers``: the wrappers themselves, and the command line (``jrl eval
#: --gymnasium``). Inside jrl everything else reaches Gymnasium through string entry points.
WRAPPER_IMPORTERS = ("jrl.wrappers", "jrl.cli")

MAX_FUNCTION_LINES = 200

#: What ``hasattr(env_params, ...)`` may ask: the fields every environment's params have (the
#: interface, checked on foreign environments), not one environment's own.
INTERFACE_FIELDS = frozenset({"replace", "max_steps_in_episode"})


@dataclass(frozen=True)
class Module:
    """One module of a package read from disk: ``name`` (``jrl.envs.core``), its ``path``, whether
    it is a package's ``__init__``, and its parsed ``tree``."""

    name: str
    path: Path
    is_package: bool
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package that relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def read_package(directory: Path) -> dict[str, Module]:
    """Every module under ``directory`` (a package), by dotted name."""
    modules = {}
    for path in sorted(directory.rglob("*.py")):
        parts = list(path.relative_to(directory.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path, is_package, ast.parse(path.read_text(), str(path)))
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: Module, modules: dict[str, Module]) -> dict[str, int]:
    """The modules of the package that ``module`` imports, anywhere in it, each with the line of
    its first import. ``from a import b`` imports ``a.b`` where that is a module, else ``a``; an
    import of a name the package does not have counts for the nearest enclosing module."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: dict[str, int] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            target = known(target)
            if target is not None and target != module.name:
                found.setdefault(target, node.lineno)
    return found


def _run_at_import(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run when the module is imported: all but function bodies, except the
    bodies of the module's own functions that it calls at module level (``_register_in_gymnasium()``)."""
    functions = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found, todo, called = [], list(tree.body), set()
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        found.append(node)
        for child in ast.walk(node):
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id in functions:
                if child.func.id not in called:
                    called.add(child.func.id)
                    todo.extend(functions[child.func.id].body)
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return found


def loaded_by_import(name: str, modules: dict[str, Module]) -> set[str]:
    """The package's modules that ``import NAME`` runs: the imports at module level (not in a
    function), followed through, with the packages that hold each module (Python runs those too)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        for outer in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if outer in modules and outer not in seen:
                seen.add(outer)
                module = modules[outer]
                shallow = Module(
                    module.name, module.path, module.is_package, ast.Module(_run_at_import(module.tree), [])
                )
                todo.extend(imports(shallow, modules))
    return seen


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    return {name: imports(module, modules) for name, module in modules.items()}


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def floor_of(name: str, floors: tuple[tuple[str, ...], ...] = FLOORS) -> int | None:
    """The floor ``name`` belongs to: that of the longest entry it is or lies inside (the root
    package, ``jrl``, stands for its ``__init__`` alone); ``None`` where no entry holds it."""
    best, best_length = None, -1
    for level, prefixes in enumerate(floors):
        for prefix in prefixes:
            inside = "." in prefix and name.startswith(prefix + ".")
            if (name == prefix or inside) and len(prefix) > best_length:
                best, best_length = level, len(prefix)
    return best


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def upward_arrows(graph: dict[str, dict[str, int]], floors: tuple[tuple[str, ...], ...] = FLOORS) -> list[str]:
    """Every import of a module on a higher floor than the importer's, as ``"a:LINE -> b"``."""
    return [
        f"{name}:{line} -> {target}"
        for name, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if floor_of(target, floors) is not None
        and floor_of(name, floors) is not None
        and floor_of(target, floors) > floor_of(name, floors)
    ]


def long_functions(modules: dict[str, Module], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function (nested ones too) longer than ``limit`` lines, from ``def`` to its last line."""
    return [
        f"{module.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for module in modules.values()
        for node in ast.walk(module.tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def _module_aliases(module: Module, modules: dict[str, Module]) -> set[str]:
    """The names a module binds to modules of the package (``dqn`` after ``from jrl.algorithms
    import dqn``, ``jrl`` after ``import jrl.envs``)."""
    names = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules or alias.name.split(".")[0] in {m.split(".")[0] for m in modules}:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            names.update(alias.asname or alias.name for alias in node.names if f"{base}.{alias.name}" in modules)
    return names


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def identity_dispatch(modules: dict[str, Module]) -> list[str]:
    """Code that asks which algorithm module or environment it holds: ``x is <module>``
    (``module is q_learning``, ``spec.module is algorithms.dqn``, ``module is other``), a module's
    ``__name__`` compared (``module.__name__ == "jrl.algorithms.dqn"``), and
    ``hasattr(env_params, "<one environment's field>")`` (or ``getattr`` with a default)."""
    found = []
    for module in modules.values():
        aliases = _module_aliases(module, modules)

        def names_a_module(node: ast.expr, aliases: set[str] = aliases) -> bool:
            dotted = _dotted(node)
            if dotted is None:
                return False
            head, last = dotted.split(".")[0], dotted.split(".")[-1]
            return last == "module" or (head in aliases and not dotted.endswith("__name__"))

        def a_module_name(node: ast.expr) -> bool:
            return isinstance(node, ast.Attribute) and node.attr == "__name__" and names_a_module(node.value)

        for node in ast.walk(module.tree):
            where = f"{module.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                constants = any(isinstance(o, ast.Constant) for o in operands)
                if any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops) and not constants:
                    if any(names_a_module(o) for o in operands):
                        found.append(f"{where} {ast.unparse(node)}")
                elif any(a_module_name(o) for o in operands):
                    found.append(f"{where} {ast.unparse(node)}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                asks = node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3)
                if asks and len(node.args) >= 2:
                    subject, field = node.args[:2]
                    dotted = _dotted(subject) or ""
                    if dotted.split(".")[-1] == "env_params" and not (
                        isinstance(field, ast.Constant) and field.value in INTERFACE_FIELDS
                    ):
                        found.append(f"{where} {ast.unparse(node)}")
    return sorted(found)


def private_reaches(files: list[Path], modules: dict[str, Module]) -> list[str]:
    """Where code outside the package uses a private name of one of its modules: ``from
    jrl.cli import _x``, or ``m._x`` / ``jrl.envs.registry._x`` with ``m`` bound to a module
    of the package (dunders such as ``jrl.__version__`` are public)."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        outside = Module(path.stem, path, False, tree)
        aliases = _module_aliases(outside, modules)
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and (node.module or "") in modules:
                found.extend(f"{where} from {node.module} import {a.name}" for a in node.names if _private(a.name))
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                dotted = _dotted(node.value)
                if dotted is not None and (dotted in aliases or dotted in modules):
                    found.append(f"{where} {dotted}.{node.attr}")
    return sorted(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# --- jrl itself ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jrl_modules() -> dict[str, Module]:
    return read_package(ROOT / "jrl")


def test_every_module_has_a_floor(jrl_modules):
    assert [name for name in jrl_modules if floor_of(name) is None] == []
    assert [floor_of(name) for name in ("jrl", "jrl.envs", "jrl.envs.core", "jrl.cli", "jrl.new")] == [7, 1, 1, 8, None]


def test_the_import_graph_has_no_circle(jrl_modules):
    assert circles(import_graph(jrl_modules)) == []


def test_no_import_runs_up_a_floor(jrl_modules):
    assert upward_arrows(import_graph(jrl_modules)) == []


def test_import_jrl_loads_no_upper_floor(jrl_modules):
    """``import jrl`` runs the floors up to text and export; the experiment floor (``jrl.sweep``,
    ``jrl.optuna_search``) and the command line load on first use."""
    experiment = floor_of("jrl.experiment")
    loaded = loaded_by_import("jrl", jrl_modules)
    assert "jrl.envs.core" in loaded and "jrl.text" in loaded  # the follower sees the package's floors
    assert sorted(name for name in loaded if name != "jrl" and (floor_of(name) or 0) >= experiment) == []


def test_only_the_command_line_imports_the_wrappers(jrl_modules):
    graph = import_graph(jrl_modules)
    found = [
        f"{name}:{line} -> {target}"
        for name, targets in sorted(graph.items())
        for target, line in targets.items()
        if _inside(target, "jrl.wrappers") and not any(_inside(name, allowed) for allowed in WRAPPER_IMPORTERS)
    ]
    assert found == []


def test_no_function_is_over_200_lines(jrl_modules):
    assert long_functions(jrl_modules) == []


def test_nothing_asks_which_module_or_environment_it_holds(jrl_modules):
    assert identity_dispatch(jrl_modules) == []


def test_the_tests_use_public_names_only(jrl_modules):
    """What a test needs of jrl is public (named without a leading underscore, documented), so a
    refactoring that keeps the public names keeps the tests."""
    assert private_reaches(sorted((ROOT / "tests").glob("*.py")), jrl_modules) == []


def test_the_version_is_the_one_pyproject_builds(jrl_modules):
    """``jrl.__version__`` lives on the bottom floor (``jrl/_version.py``), where records and
    checkpoints read it, and the package's face re-exports it; ``pyproject.toml`` states it a
    second time (static, not read from the module), so the two must agree."""
    assigned = {
        module.name: node.value.value
        for module in jrl_modules.values()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets)
    }
    assert list(assigned) == ["jrl._version"], assigned
    face = [
        alias.asname or alias.name
        for node in jrl_modules["jrl"].tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "jrl._version"
        for alias in node.names
    ]
    assert face == ["__version__"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == assigned["jrl._version"]


# --- the checkers see what they are for, in planted packages --------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    """A package ``pkg`` in ``tmp_path`` holding ``files`` (path -> source), read back."""
    for name, source in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return read_package(tmp_path / "pkg")


PLANTED_FLOORS = (("pkg.low",), ("pkg.mid",), ("pkg",), ("pkg.top",))


def test_a_circle_through_a_function_level_relative_import_is_seen(tmp_path):
    modules = plant(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "from pkg.low import a\n",
            "low/a.py": "def f():\n    from ..mid import b  # late and relative: still an arrow\n",
            "mid/__init__.py": "",
            "mid/b.py": "from pkg.low.a import f\n",
        },
    )
    graph = import_graph(modules)
    assert graph["pkg.low.a"] == {"pkg.mid.b": 2}
    assert circles(graph) == [["pkg.low.a", "pkg.mid.b"]]
    assert upward_arrows(graph, PLANTED_FLOORS) == ["pkg.low.a:2 -> pkg.mid.b"]


def test_an_import_of_the_package_face_from_below_is_an_arrow_up(tmp_path):
    modules = plant(
        tmp_path,
        {
            "__init__.py": "from pkg.low import a\n__version__ = '1'\n",
            "low/__init__.py": "",
            "low/a.py": "def version():\n    import pkg\n    return pkg.__version__\n",
            "top.py": "from pkg import low\nfrom pkg.low import a as b\n",
        },
    )
    graph = import_graph(modules)
    assert graph["pkg.top"] == {"pkg.low": 1, "pkg.low.a": 2}
    assert upward_arrows(graph, PLANTED_FLOORS) == ["pkg.low.a:2 -> pkg"]
    assert circles(graph) == [["pkg", "pkg.low.a"]]


def test_what_an_import_runs_skips_function_bodies_and_includes_packages(tmp_path):
    modules = plant(
        tmp_path,
        {
            "__init__.py": "from pkg.low import a, d\n",
            "low/__init__.py": "",
            "low/a.py": "import os\ntry:\n    from pkg.mid import b\nexcept ImportError:\n    pass\n",
            "low/d.py": "def g():\n    from pkg.low import e\ndef h():\n    from pkg import top\nif True:\n    g()\n",
            "low/e.py": "",
            "mid/__init__.py": "",
            "mid/b.py": "class C:\n    from pkg.mid import c\ndef f():\n    from pkg import top\n",
            "mid/c.py": "",
            "top.py": "",
        },
    )
    loaded = {"pkg", "pkg.low", "pkg.low.a", "pkg.low.d", "pkg.low.e", "pkg.mid", "pkg.mid.b", "pkg.mid.c"}
    assert loaded_by_import("pkg", modules) == loaded  # not pkg.top: only uncalled functions import it


def test_a_long_function_is_seen_nested_or_not(tmp_path):
    inner = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))  # with its def: 201 lines
    modules = plant(tmp_path, {"__init__.py": f"def outer():\n    def inner():\n{inner}"})
    assert long_functions(modules) == ["pkg:1 outer (202 lines)", "pkg:2 inner (201 lines)"]
    short = plant(tmp_path / "short", {"__init__.py": "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1)})
    assert long_functions(short) == []


def test_identity_dispatch_is_seen_and_contract_questions_are_not(tmp_path):
    modules = plant(
        tmp_path,
        {
            "__init__.py": "",
            "algos/__init__.py": "",
            "algos/dqn.py": "",
            "algos/q.py": "",
            "use.py": (
                "from pkg.algos import dqn\n"
                "from pkg import algos\n"
                "def f(module, spec, env_params, run):\n"
                "    a = module is dqn\n"
                "    b = spec.module is algos.q\n"
                "    c = module.__name__ == 'pkg.algos.dqn'\n"
                "    d = hasattr(env_params, 'adjacency')\n"
                "    e = getattr(run.env_params, 'trie_children', None)\n"
                "    ok = [module is None, hasattr(env_params, 'replace'), hasattr(spec, 'check_env'),\n"
                "          spec is run, getattr(env_params, 'adjacency'), type(run).__name__ == 'Run']\n"
            ),
        },
    )
    assert [entry.split(" ", 1)[1] for entry in identity_dispatch(modules)] == [
        "module is dqn",
        "spec.module is algos.q",
        "module.__name__ == 'pkg.algos.dqn'",
        "hasattr(env_params, 'adjacency')",
        "getattr(run.env_params, 'trie_children', None)",
    ]


def test_a_reach_for_a_private_name_is_seen(tmp_path):
    modules = plant(tmp_path, {"__init__.py": "", "low.py": "_x = 1\n__version__ = '1'\n"})
    user = tmp_path / "user.py"
    user.write_text(
        "import pkg\nfrom pkg import low\nfrom pkg.low import _x\nlow._x, pkg.low._x, low.__version__, low.public\n"
    )
    assert private_reaches([user], modules) == [
        "user.py:3 from pkg.low import _x",
        "user.py:4 low._x",
        "user.py:4 pkg.low._x",
    ]
