"""Lineage over the demo graph: ancestors and descendants, checked against a
breadth-first walk in Python over every edge (the reference), in each format."""

from __future__ import annotations

import json
import shutil
from collections import deque
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, Workspace

from cmi_console.services import demo
from cmi_console.services.context import Context
from cmi_console.services.lineage import EDGES


@pytest.fixture(scope="module")
def demo_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lineage") / "ws"
    demo.ensure_demo(home, start=date(2026, 9, 1))
    return home


@pytest.fixture
def ws(demo_master: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Workspace:
    copy = tmp_path / "ws"
    shutil.copytree(demo_master, copy)
    return Workspace(copy, None, capsys)


def run(ws: Workspace, *args: str) -> Result:
    r = ws.cli("lineage", *args, as_=None)
    assert r.code == 0, r.err
    return r


def reference(ws: Workspace, start: str, direction: str, depth: int) -> set[tuple[str, str, str]]:
    """Every edge within `depth` steps, by brute force over the whole table."""
    ctx = Context.open(ws.home)
    with ctx.read() as conn:
        rows = conn.execute(EDGES.select()).all()
    edges = [(f"{r.src_kind}:{r.src_id}", f"{r.dst_kind}:{r.dst_id}", r.relation) for r in rows]
    near, far = (1, 0) if direction == "up" else (0, 1)
    found, queue, seen = set(), deque([(start, 0)]), {start}
    while queue:
        node, d = queue.popleft()
        if d == depth:
            continue
        for e in edges:
            if e[near] == node:
                found.add(e)
                if e[far] not in seen:
                    seen.add(e[far])
                    queue.append((e[far], d + 1))
    return found


def graph(ws: Workspace, *args: str) -> dict[str, Any]:
    return run(ws, *args, "--format", "json").json()


def labels(g: dict[str, Any]) -> set[str]:
    return {n["label"] for n in g["nodes"].values()}


def test_ancestors_of_a_production_version(ws: Workspace) -> None:
    g = graph(ws, "credit-risk:2", "--up")
    assert {e["direction"] for e in g["edges"]} == {"up"}
    got = labels(g)
    assert any(x.startswith("dataset credit:1 ") for x in got)
    assert any(x.startswith("training run credit-risk-") for x in got)
    assert any(x.startswith("recipe ") for x in got)
    assert "version credit-risk:1 (retired)" in got  # it succeeded version 1
    relations = {e["relation"] for e in g["edges"]}
    assert {"train", "produced", "input:train", "recipe", "succeeded-by"} <= relations


def test_descendants_of_a_production_version(ws: Workspace) -> None:
    g = graph(ws, "credit-risk:2", "--down")
    got = labels(g)
    assert any(x.startswith("validation #") and "credit-production: pass" in x for x in got)
    assert {x for x in got if x.startswith("decision #")} and any(
        "rita approve to production" in x for x in got
    )
    assert any(x.startswith("incident #2: approval rate down") for x in got)
    # each production approval rests on the validation it bound
    evidence = [e for e in g["edges"] if e["relation"] == "evidence"]
    assert evidence and all(e["src"].startswith("validation:") for e in evidence)


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize("depth", [1, 2, 10])
def test_the_recursive_query_equals_the_reference(
    ws: Workspace, direction: str, depth: int
) -> None:
    for ref in ("credit-risk:1", "credit-risk:2", "diabetes-progression:1", "wine-cultivar:2"):
        g = graph(ws, ref, f"--{direction}", "--depth", str(depth))
        got = {(e["src"], e["dst"], e["relation"]) for e in g["edges"]}
        assert got == reference(ws, g["root"], direction, depth), (ref, direction, depth)
        assert set(g["nodes"]) == {g["root"]} | {x for e in got for x in e[:2]}


def test_both_is_up_and_down(ws: Workspace) -> None:
    both = graph(ws, "credit-risk:2")
    up, down = graph(ws, "credit-risk:2", "--up"), graph(ws, "credit-risk:2", "--down")
    assert both["edges"] == sorted(
        up["edges"] + down["edges"], key=lambda e: (e["direction"], e["depth"], e["src"], e["dst"])
    )


def test_dot_mermaid_and_tree_name_every_node(ws: Workspace) -> None:
    g = graph(ws, "credit-risk:2")
    dot = run(ws, "credit-risk:2", "--format", "dot").out
    mermaid = run(ws, "credit-risk:2", "--format", "mermaid").out
    tree = run(ws, "credit-risk:2").out
    assert dot.startswith("digraph lineage {") and mermaid.startswith("flowchart LR")
    for node in g["nodes"].values():
        assert json.dumps(node["label"]) in dot
        assert node["label"].replace('"', "'") in mermaid
    assert dot.count(" -> ") == mermaid.count(" -->|") == len(g["edges"])
    assert "upstream (came from)" in tree and "downstream (led to)" in tree


def test_a_label_cannot_break_out_of_its_node_in_dot_or_mermaid() -> None:
    from cmi_console.services.lineage import as_dot, as_mermaid

    hostile = 'x"];\nevil [shape=box label="pwn'
    g = {
        "root": "version:1",
        "nodes": {"version:1": {"label": hostile}, "incident:2": {"label": "ok"}},
        "edges": [{"src": "version:1", "dst": "incident:2", "relation": "incident"}],
    }
    for text in (as_dot(g), as_mermaid(g)):
        # one line a node, one an edge, plus the header (and dot's two)
        assert len(text.splitlines()) == (6 if text.startswith("digraph") else 4), text
        assert not any(line.startswith("evil") for line in text.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["credit-risk:2", "--format", "pdf"], "--format"),
        (["credit-risk:2", "--depth", "0"], "--depth"),
        (["credit-risk:2", "--up", "--down"], "at most one"),
        (["credit-risk:99"], "no such version"),
    ],
)
def test_bad_lineage_input(ws: Workspace, args: list[str], message: str) -> None:
    r = ws.cli("lineage", *args, as_=None)
    assert r.code == 2 and message in r.err and "\n" not in r.err.strip()


def test_edges_are_logged_and_the_log_verifies(ws: Workspace) -> None:
    r = ws.cli("audit", "verify", "--json", as_=None)
    assert r.code == 0, r.out
    ctx = Context.open(ws.home)
    with ctx.read() as conn:
        assert conn.execute(EDGES.select()).first() is not None
