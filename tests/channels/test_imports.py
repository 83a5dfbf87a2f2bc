"""The import graph of `channels`: no cycles among its modules (issue 16 item 4).

`channels.channel` and `channels.message` imported each other (through bottom-of-module
``# noqa: E402`` imports); the pending-message store now sits below both in
`channels.pending`, which needs only `channels.retry` and `channels.signals`.

The graph is read from the source with `ast`: module-level imports, including those in
``try``/``if`` blocks, but not those inside functions (run later, when every module is
loaded) or under ``if TYPE_CHECKING:``. A module's import of its own parent package is
not an edge: Python always initialises the parent first.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import channels

ROOT = Path(channels.__file__).resolve().parent.parent
PACKAGE = ROOT / "channels"


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def imported_names(tree: ast.Module, package: str) -> set[str]:
    names: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                names.add(module)
                # `from . import x` may name a submodule.
                names.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return names


def import_graph() -> dict[str, set[str]]:
    found = modules()
    graph = {}
    for name, (path, is_package) in found.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for target in imported_names(ast.parse(path.read_text()), package):
            while target and target not in found:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                strong(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def test_the_graph_sees_the_imports():
    """The check itself: it finds the edges this test module relies on."""
    graph = import_graph()
    assert "channels.pending" in graph["channels.channel"]
    assert {"channels.channel", "channels.pending"} <= graph["channels.message"]
    assert "channels.retry" in graph["channels.pending"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_channels_modules():
    """Issue 16 item 4: the channel <-> message circle is gone, and none other exists."""
    assert cycles(import_graph()) == []


def test_the_store_and_the_retries_sit_below_channel_and_message():
    graph = import_graph()
    assert graph["channels.retry"] == set()
    assert graph["channels.pending"] <= {"channels.retry", "channels.signals"}


def test_no_bottom_of_module_imports_remain():
    """The cycle's workaround (imports after the code, ``noqa: E402``) is gone."""
    offenders = [
        str(path.relative_to(ROOT))
        for path, _ in modules().values()
        if "noqa: E402" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "channels.retry",
        "channels.pending",
        "channels.channel",
        "channels.message",
        "channels.worker",
        "channels.handler",
    ],
)
def test_each_core_module_imports_first_in_a_fresh_interpreter(module):
    """Whichever module a program imports first, it loads (no partially initialised
    module on the way), without settings (C-3)."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__name__)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [module]
