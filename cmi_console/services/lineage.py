"""Lineage: how each record came from the others, and walking it.

Edges are rows of `lineage_edges`, written by the service that creates the
record, in the same transaction and the same audit entry. Walking is one
recursive SQL query per direction, so its cost follows the size of the
answer, not of the graph.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, text

from cmi_console.core.errors import BadInput
from cmi_console.core.printable import printable
from cmi_console.services.context import Context, Tx
from cmi_console.store.tables import (
    Alert,
    Dataset,
    Decision,
    Deployment,
    Incident,
    LineageEdge,
    ModelVersion,
    MonitoringWindow,
    PromotionRequest,
    TrainingRun,
    ValidationRun,
    table,
)

EDGES = table(LineageEdge)
Node = tuple[str, str]
DIRECTIONS = ("up", "down", "both")
MAX_DEPTH = 50

_WALK = """
WITH RECURSIVE walk(src_kind, src_id, dst_kind, dst_id, relation, depth) AS (
    SELECT src_kind, src_id, dst_kind, dst_id, relation, 1 FROM lineage_edges
     WHERE {near}_kind = :kind AND {near}_id = :id
    UNION
    SELECT e.src_kind, e.src_id, e.dst_kind, e.dst_id, e.relation, w.depth + 1
      FROM lineage_edges e
      JOIN walk w ON e.{near}_kind = w.{far}_kind AND e.{near}_id = w.{far}_id
     WHERE w.depth < :depth
)
SELECT src_kind, src_id, dst_kind, dst_id, relation, MIN(depth) AS depth
  FROM walk GROUP BY src_kind, src_id, dst_kind, dst_id, relation
"""
# going up, an edge is reached through its destination; going down, its source
_QUERIES = {
    "up": text(_WALK.format(near="dst", far="src")),
    "down": text(_WALK.format(near="src", far="dst")),
}


def connect(tx: Tx, edges: list[tuple[Node, Node, str]]) -> None:
    """Record edges (src, dst, relation) with the caller's entry."""
    tx.insert_many(
        EDGES,
        [
            {
                "src_kind": s[0],
                "src_id": str(s[1]),
                "dst_kind": d[0],
                "dst_id": str(d[1]),
                "relation": relation,
                "created_at": tx.time,
            }
            for s, d, relation in edges
        ],
    )


def walk(conn: Any, start: Node, direction: str, depth: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        _QUERIES[direction], {"kind": start[0], "id": start[1], "depth": depth}
    ).all()
    return [
        {
            "src": f"{r.src_kind}:{r.src_id}",
            "dst": f"{r.dst_kind}:{r.dst_id}",
            "relation": r.relation,
            "depth": r.depth,
            "direction": direction,
        }
        for r in rows
    ]


def lineage(ctx: Context, ref: str, direction: str = "both", depth: int = 10) -> dict[str, Any]:
    """The graph around a version: its ancestors (up), descendants (down) or both."""
    from cmi_console.services import registry

    if direction not in DIRECTIONS:
        raise BadInput(f"--direction: must be one of {', '.join(DIRECTIONS)}")
    if not 1 <= depth <= MAX_DEPTH:
        raise BadInput(f"--depth: must be between 1 and {MAX_DEPTH}")
    with ctx.read() as conn:
        v = registry.version_row(conn, ref)
        start: Node = ("version", str(v.id))
        edges = []
        for d in ("up", "down") if direction == "both" else (direction,):
            edges += walk(conn, start, d, depth)
        keys = {f"{start[0]}:{start[1]}"} | {e["src"] for e in edges} | {e["dst"] for e in edges}
        nodes = describe(conn, keys)
    edges.sort(key=lambda e: (e["direction"], e["depth"], e["src"], e["dst"]))
    return {"root": f"{start[0]}:{start[1]}", "nodes": nodes, "edges": edges}


def root_key(ctx: Context, ref: str) -> str:
    """The node key of a version (MODEL:VERSION)."""
    from cmi_console.services import registry

    with ctx.read() as conn:
        return f"version:{registry.version_row(conn, ref).id}"


def node_edges(ctx: Context, key: str, direction: str) -> dict[str, Any]:
    """One step from a node (for a tree that expands lazily)."""
    kind, _, ident = key.partition(":")
    with ctx.read() as conn:
        edges = walk(conn, (kind, ident), direction, 1)
        keys = {key} | {e["src"] for e in edges} | {e["dst"] for e in edges}
        return {"nodes": describe(conn, keys), "edges": edges}


_LABELS: dict[str, Any] = {
    "dataset": (table(Dataset), ("name", "version", "content_sha256")),
    "run": (table(TrainingRun), ("run_key", "created_by", "created_at")),
    "version": (table(ModelVersion), ("model_id", "version", "stage", "status", "author")),
    "validation": (table(ValidationRun), ("suite", "status", "run_by", "finished_at")),
    "decision": (table(Decision), ("principal", "decision", "request_id", "created_at")),
    "incident": (table(Incident), ("title", "severity", "status", "opened_at")),
    "deployment": (table(Deployment), ("environment", "strategy", "status", "created_at")),
    "window": (table(MonitoringWindow), ("environment", "name", "rows", "created_at")),
    "alert": (table(Alert), ("kind", "status", "message", "created_at")),
}


def describe(conn: Any, keys: set[str]) -> dict[str, dict[str, Any]]:
    """A label and the main facts of each node, one query per kind."""
    from cmi_console.services.registry import MODELS

    by_kind: dict[str, list[str]] = {}
    for key in keys:
        kind, _, ident = key.partition(":")
        by_kind.setdefault(kind, []).append(ident)
    out: dict[str, dict[str, Any]] = {}
    models = {}
    if "version" in by_kind:
        models = dict(conn.execute(select(MODELS.c.id, MODELS.c.name)).all())
    stages = {}
    if "decision" in by_kind:
        req = table(PromotionRequest)
        stages = dict(conn.execute(select(req.c.id, req.c.to_stage)).all())
    for kind, idents in by_kind.items():
        if kind not in _LABELS:  # a recipe is named by its hash
            for ident in idents:
                out[f"{kind}:{ident}"] = {"kind": kind, "label": f"{kind} {ident[:12]}"}
            continue
        tbl, cols = _LABELS[kind]
        ids = [int(i) for i in idents if i.isdigit()]
        stmt = select(tbl.c.id, *(tbl.c[c] for c in cols)).where(
            tbl.c.id.in_(bindparam("ids", expanding=True))
        )
        for row in conn.execute(stmt, {"ids": ids}):
            facts = dict(zip(cols, row[1:], strict=True))
            # the node's kind wins over a column of the same name (an alert's kind)
            out[f"{kind}:{row.id}"] = {
                **facts,
                "kind": kind,
                "label": _label(kind, row.id, facts, models, stages),
            }
    for key in keys - set(out):  # the record is gone (never expected)
        out[key] = {"kind": key.partition(":")[0], "label": f"{key} (missing)"}
    return out


def _label(
    kind: str, ident: int, f: dict[str, Any], models: dict[int, str], stages: dict[int, str]
) -> str:
    if kind == "dataset":
        return f"dataset {f['name']}:{f['version']} {f['content_sha256'][:12]}"
    if kind == "run":
        return f"training run {f['run_key']}"
    if kind == "version":
        return f"version {models.get(f['model_id'], '?')}:{f['version']} ({f['stage']})"
    if kind == "validation":
        return f"validation #{ident} {f['suite']}: {f['status']} by {f['run_by']}"
    if kind == "decision":
        to = stages.get(f["request_id"], "?")
        return f"decision #{ident}: {f['principal']} {f['decision']} to {to}"
    if kind == "deployment":
        return f"deployment #{ident}: {f['strategy']} in {f['environment']} ({f['status']})"
    if kind == "window":
        return f"window #{ident}: {f['name']} in {f['environment']} ({f['rows']} rows)"
    if kind == "alert":
        return f"alert #{ident}: {f['kind']} ({f['status']})"
    return f"incident #{ident}: {f['title']} ({f['severity']}, {f['status']})"


# --- renderings -------------------------------------------------------------


def as_dot(graph: dict[str, Any]) -> str:
    def q(s: str) -> str:
        s = printable(s, one_line=True)  # a label's line break or ESC, shown as escapes
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph lineage {", "  rankdir=LR;"]
    for key, node in sorted(graph["nodes"].items()):
        shape = "box" if key == graph["root"] else "ellipse"
        lines.append(f"  {q(key)} [label={q(node['label'])}, shape={shape}];")
    for e in graph["edges"]:
        lines.append(f"  {q(e['src'])} -> {q(e['dst'])} [label={q(e['relation'])}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def as_mermaid(graph: dict[str, Any]) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(sorted(graph["nodes"]))}

    def label(s: str) -> str:
        # a line break ended the node's definition: what followed was read as
        # mermaid; a quote ended the label
        return printable(s, one_line=True).replace('"', "'")

    lines = ["flowchart LR"]
    for key, node in sorted(graph["nodes"].items()):
        lines.append(f'  {ids[key]}["{label(node["label"])}"]')
    for e in graph["edges"]:
        lines.append(f"  {ids[e['src']]} -->|{label(e['relation'])}| {ids[e['dst']]}")
    return "\n".join(lines) + "\n"


def tree_lines(graph: dict[str, Any]) -> list[tuple[int, str]]:
    """(indent, text) lines: the root, then upstream and downstream subtrees."""
    nodes, root = graph["nodes"], graph["root"]
    out = [(0, nodes[root]["label"])]
    for direction, title, near, far in (
        ("up", "upstream (came from)", "dst", "src"),
        ("down", "downstream (led to)", "src", "dst"),
    ):
        edges = [e for e in graph["edges"] if e["direction"] == direction]
        if not edges:
            continue
        out.append((1, title))
        children: dict[str, list[dict[str, Any]]] = {}
        for e in edges:
            children.setdefault(e[near], []).append(e)

        def visit(key: str, level: int, seen: frozenset[str]) -> None:
            for e in sorted(children.get(key, []), key=lambda x: x[far]):  # noqa: B023
                nxt = e[far]  # noqa: B023
                out.append((level, f"{e['relation']}: {nodes[nxt]['label']}"))
                if nxt not in seen:
                    visit(nxt, level + 1, seen | {nxt})

        visit(root, 2, frozenset({root}))
    return out
