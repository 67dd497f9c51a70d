"""The package's layers, read from its source: who imports whom (trio's ``test_exports.py`` idea).

Every module of ``akool_async`` is parsed with ``ast`` (nothing is imported to build the graph),
and each import is resolved to the ``akool_async`` module it loads: ``from . import x`` and
``from akool_async.cli import _main`` name the submodule, ``from ._models import X`` the module
``_models``. An import is *module-level* when it runs as the module loads (at the top, in an
``if TYPE_CHECKING:`` block, in a ``try`` or a class body) and *local* inside a function.

Three rules:

- Nothing outside ``akool_async/cli`` imports the CLI, whatever the kind of import (a local
  import is a dependency all the same); the one exception is ``akool_async.__main__``, the
  ``python -m akool_async`` entry point, which is the program and not the SDK.
- The job machinery (``akool_async._jobs``) sits between the foundation and the clients: it
  imports no client module (``_base_client``, ``_client``, ``_sync``, ``_mirrors``,
  ``_portal``), no gallery report, no CLI and no emulator, and nothing of the foundation (every
  other module of the SDK) imports it; any kind of import counts.
- No import cycle among module-level imports (``TYPE_CHECKING`` ones included: a cycle that
  only the type checker sees is still a knot in the design). A function-local import is the
  project's way of breaking a cycle on purpose (openai-python's lazy imports), so it is left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

import akool_async

ROOT = Path(akool_async.__file__).resolve().parent
PACKAGE = "akool_async"
CLI = f"{PACKAGE}.cli"
#: Modules outside the CLI that may import it: the entry points, never the SDK.
CLI_ENTRY_POINTS = frozenset({f"{PACKAGE}.__main__"})

JOBS = f"{PACKAGE}._jobs"
#: The layer above the job machinery (and the package itself, which re-exports everything).
ABOVE_JOBS = frozenset(
    {PACKAGE, f"{PACKAGE}.__main__"}
    | {
        f"{PACKAGE}.{name}"
        for name in (
            *("_base_client", "_client", "_sync", "_mirrors", "_portal"),
            *("_report", "_report_data", "_report_media", "_report_page"),
        )
    }
)

#: Import cycles allowed: none. (Issue 13 removed the last four: ``_asgi``/``_receiver`` share a
#: module, ``_mirrors`` names the blocking client by protocols, the job machinery takes a
#: ``_seams.ClientSeam`` instead of importing ``_client``, the emulator's app a server state.)
#: A cycle fails the test, and so does a listed one that no longer exists.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


@attrs.frozen
class Import:
    """One import statement's target inside the package."""

    source: str
    target: str
    line: int
    local: bool


def module_name(path: Path) -> str:
    """``akool_async/cli/_main.py`` -> ``akool_async.cli._main``; a package is its ``__init__``."""
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def owner(name: str) -> str | None:
    """The package module that ``name`` loads (its longest prefix that is a module), if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in MODULES else base


def imports_of(module: str) -> list[Import]:
    """Every import in ``module`` that loads a module of the package."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))
    found: list[Import] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _targets(child, module):
                    target = owner(name)
                    if target is not None and target != module:
                        found.append(Import(module, target, child.lineno, local))
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, inner)

    visit(tree, local=False)
    return found


IMPORTS: list[Import] = [found for module in MODULES for found in imports_of(module)]


def in_cli(module: str) -> bool:
    return module == CLI or module.startswith(f"{CLI}.")


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def test_the_graph_sees_the_package() -> None:
    """The parser finds the modules and the imports it is about (a guard against a blind test)."""
    assert {PACKAGE, CLI, f"{CLI}._main", f"{PACKAGE}._client", f"{PACKAGE}.testing"} <= set(
        MODULES
    )
    edges = {(i.source, i.target) for i in IMPORTS}
    assert (f"{PACKAGE}.__main__", CLI) in edges
    assert (f"{CLI}._main", f"{CLI}._commands") in edges
    assert (PACKAGE, f"{PACKAGE}._client") in edges
    assert any(i.local for i in IMPORTS)


def test_nothing_in_the_sdk_imports_the_cli() -> None:
    """The CLI sits on top: no SDK or testing module imports it, not even lazily."""
    offenders = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if in_cli(i.target) and not in_cli(i.source) and i.source not in CLI_ENTRY_POINTS
    ]
    assert offenders == []


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def layer(module: str) -> str:
    """``"jobs"``, ``"above"`` (clients, report, CLI, emulator, the package) or ``"foundation"``."""
    if in_package(module, JOBS):
        return "jobs"
    if module in ABOVE_JOBS or in_cli(module) or in_package(module, f"{PACKAGE}.testing"):
        return "above"
    return "foundation"


def test_the_job_machinery_sits_between_the_foundation_and_the_clients() -> None:
    """``_jobs`` imports nothing above it, and nothing below it imports ``_jobs``."""
    assert {f"{JOBS}._service", f"{JOBS}._batch", f"{PACKAGE}._requester"} <= set(MODULES)
    assert all(name in MODULES for name in ABOVE_JOBS)
    offenders = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if (layer(i.source), layer(i.target)) in {("jobs", "above"), ("foundation", "jobs")}
    ]
    assert offenders == []


#: What the emulator may import of the SDK: it is an independent check of the contract, so
#: it shares the webhook cipher (contract section 5) and nothing of the client side.
EMULATOR_MAY_IMPORT = frozenset({f"{PACKAGE}._crypto", f"{PACKAGE}._public"})


def test_the_emulator_imports_nothing_of_the_client_side() -> None:
    """``akool_async.testing`` imports only itself, the cipher and ``_public``."""
    testing = f"{PACKAGE}.testing"
    offenders = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if in_package(i.source, testing)
        and not in_package(i.target, testing)
        and i.target not in EMULATOR_MAY_IMPORT
    ]
    assert offenders == []


def test_importing_the_sdk_loads_no_cli() -> None:
    """What the source says holds when it runs: ``import akool_async`` loads no CLI module."""
    script = (
        "import sys, akool_async, akool_async.testing\n"
        f"print(sorted(m for m in sys.modules if m == {CLI!r} or m.startswith({CLI + '.'!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_no_import_cycles() -> None:
    """Module-level imports (``TYPE_CHECKING`` ones included) form no cycle, but known ones."""
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for i in IMPORTS:
        if not i.local:
            edges[i.source].add(i.target)
    found = cycles(edges)
    new = sorted(sorted(cycle) for cycle in found - KNOWN_CYCLES)
    gone = sorted(sorted(cycle) for cycle in KNOWN_CYCLES - found)
    assert (new, gone) == ([], [])
