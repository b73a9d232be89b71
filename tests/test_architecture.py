"""The shape of the code: no import cycles, small files, a light configuration layer.

docs/architecture.md describes the layout these tests hold in place.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300


def _modules() -> dict[str, Path]:
    """Every module of the project by its import name (the top-level callbacks/ installs as unlearn.callbacks)."""
    found = {}
    for top, prefix in (("unlearn", "unlearn"), ("callbacks", "unlearn.callbacks")):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT / top).with_suffix("").parts
            name = ".".join((prefix, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or \
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports anywhere (functions included; ``if TYPE_CHECKING`` blocks excluded)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                edges.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    edges.add(sub if sub in modules else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {e for e in edges if e in modules and e != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 100, "the import graph was not read"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_file_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.joinpath("unlearn").rglob("*.py"),
                                                  *ROOT.joinpath("callbacks").rglob("*.py"),
                                                  *ROOT.joinpath("tests").rglob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_loading_a_config_imports_neither_lightning_nor_transformers():
    # `--show-config` and every config error come back in about a second.
    code = ("import sys; from unlearn.config.loading import load_config; load_config(['loss/npo']); "
            "print(sorted(m for m in ('lightning', 'transformers', 'datasets') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_user_facing_error_shares_one_base_that_the_cli_catches():
    from unlearn.errors import (CollectiveError, ConfigError, DataError, ModelLoadError, NonFiniteError,
                                RunFolderError, RunInterrupted, UnlearnError)
    from unlearn.reporting.compare import NotARunError

    for error in (CollectiveError, ConfigError, DataError, ModelLoadError, NonFiniteError, RunFolderError,
                  RunInterrupted, NotARunError):
        assert issubclass(error, UnlearnError), error
    source = (ROOT / "unlearn" / "cli.py").read_text()
    assert "except UnlearnError" in source
