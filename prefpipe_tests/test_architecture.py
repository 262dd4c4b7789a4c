"""The layout holds: import-linter's contracts in pyproject.toml (layers, no Dagster in the
libraries, no cycles between siblings), no import cycle between any two modules (imports inside
functions and under TYPE_CHECKING count), no module over 500 lines, and every asset's function in
a file named after it under prefpipe/defs/<group>/, with its checks beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from prefpipe_tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "prefpipe"


def test_import_linter_contracts_are_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(exe), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over the module graph: every group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_no_import_cycle_anywhere():
    graph = grimp.build_graph("prefpipe", include_external_packages=False)
    assert strongly_connected(graph) == []


def test_a_cycle_is_found_when_there_is_one():
    graph = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.b", imported="p.c")
    assert strongly_connected(graph) == [["p.a", "p.b"]]


def test_no_module_over_500_lines():
    long = {str(p.relative_to(PROJECT_ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_every_asset_lives_in_a_file_named_after_it_with_its_checks(data_dir):
    from prefpipe.definitions import build_definitions

    defs = build_definitions()
    for assets_def in defs.assets:
        module = sys.modules[assets_def.op.compute_fn.decorated_fn.__module__]
        path = Path(module.__file__)
        assert path.stem == assets_def.op.name, (assets_def.op.name, path)
        groups = {assets_def.group_names_by_key[k] for k in assets_def.keys}
        assert path.parent.name in groups and path.parent.parent == PACKAGE / "defs", path
    for check_def in defs.asset_checks:
        module = sys.modules[check_def.node_def.compute_fn.decorated_fn.__module__]
        for key in check_def.check_keys:
            owner = key.asset_key.to_user_string()
            owners = {owner, "ai_labels"} if owner == "judge_calls" else {owner}
            assert Path(module.__file__).stem in owners, (key, module.__file__)
