"""Model cards for export bundles: one structure, rendered as Markdown and HTML.

`sections(card)` turns the gathered facts into titled blocks (paragraphs and
tables); both renderers walk the same blocks, so the two files never say
different things.
"""

from __future__ import annotations

import html
import json
from typing import Any

Block = tuple[str, list[str] | list[list[str]]]  # ("p", lines) or ("table", rows)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "" if value is None else str(value)


def sections(card: dict[str, Any]) -> list[tuple[str, list[Block]]]:
    v = card["version"]
    out: list[tuple[str, list[Block]]] = []
    use = [card.get("model_description") or "No intended use recorded for the model."]
    if v.get("description"):
        use.append(f"This version: {v['description']}")
    use.append(f"Risk tier: {card.get('tier') or 'default'}. Owner: {card.get('owner')}.")
    out.append(("Intended use", [("p", use)]))
    data = [["role", "dataset", "sha256"]] + [
        [d["role"], d["dataset"], d["sha256"]] for d in v.get("datasets", [])
    ]
    out.append(("Data", [("table", data)] if len(data) > 1 else [("p", ["No dataset linked."])]))
    metrics = [["metric", "value"]] + [[k, _fmt(x)] for k, x in sorted(v["metrics"].items())]
    run = card.get("run") or {}
    for k, x in sorted((run.get("metrics") or {}).items()):
        if k not in v["metrics"]:
            metrics.append([f"{k} (training run)", _fmt(x)])
    out.append(("Metrics", [("table", metrics)] if len(metrics) > 1 else [("p", ["None."])]))
    checks = [["suite", "run", "check", "status", "value", "threshold", "explanation"]]
    fairness = [["run", "check", "status", "value", "explanation"]]
    for r in card.get("validations", []):
        for c in r.get("results", []):
            row = [r["suite"], str(r["run"]), c.get("label", c.get("kind", "")), c["status"]]
            checks.append(
                row + [_fmt(c.get("value")), _fmt(c.get("threshold")), c.get("explanation", "")]
            )
            if c.get("kind") == "fairness":
                value, why = _fmt(c.get("value")), c.get("explanation", "")
                fairness.append([str(r["run"]), row[2], c["status"], value, why])
    out.append(
        ("Validation", [("table", checks)] if len(checks) > 1 else [("p", ["Never validated."])])
    )
    out.append(
        (
            "Fairness",
            [("table", fairness)] if len(fairness) > 1 else [("p", ["No fairness check was run."])],
        )
    )
    approvals = [["time", "principal", "decision", "to stage", "comment"]] + [
        [d["created_at"], d["principal"], d["decision"], d["to_stage"], d.get("comment", "")]
        for d in card.get("decisions", [])
    ]
    out.append(("Approvals", [("table", approvals)] if len(approvals) > 1 else [("p", ["None."])]))
    limits = [
        f"{r['suite']} run {r['run']}: {c.get('label', c.get('kind'))} {c['status']}: "
        f"{c.get('explanation', '')}"
        for r in card.get("validations", [])
        for c in r.get("results", [])
        if c["status"] in ("fail", "warn", "error")
    ]
    if card.get("retirement"):
        limits.append(f"Retired: {card['retirement']['reason']}")
    out.append(("Limitations", [("p", limits or ["No failing or warning check recorded."])]))
    lineage = [
        f"Datasets: {', '.join(d['dataset'] for d in v.get('datasets', [])) or 'none'}",
        f"Training run: {v.get('run') or 'none'}"
        + (f" (recipe {run['params'].get('recipe_sha256', '')[:12]})" if run.get("params") else ""),
        f"Artifact: {v['artifact_sha256']} ({v['artifact_format']}, {v['artifact_size']} bytes)",
        f"Registered by {v['author']} at {v['created_at']}; stage {v['stage']}, "
        f"status {v['status']}.",
    ]
    out.append(("Lineage", [("p", lineage)]))
    return out


def title(card: dict[str, Any]) -> str:
    v = card["version"]
    return f"Model card: {v['model']} version {v['version']}"


def markdown(card: dict[str, Any]) -> str:
    lines = [f"# {title(card)}", ""]
    for heading, blocks in sections(card):
        lines += [f"## {heading}", ""]
        for kind, body in blocks:
            if kind == "p":
                lines += [str(x) for x in body] + [""]
            else:
                rows = [[str(c).replace("|", "\\|") for c in r] for r in body]  # type: ignore[union-attr]
                lines.append("| " + " | ".join(rows[0]) + " |")
                lines.append("|" + " --- |" * len(rows[0]))
                lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
                lines.append("")
    return "\n".join(lines)


def to_html(card: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{e(title(card))}</title></head><body>",
        f"<h1>{e(title(card))}</h1>",
    ]
    for heading, blocks in sections(card):
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, body in blocks:
            if kind == "p":
                parts += [f"<p>{e(str(x))}</p>" for x in body]
            else:
                rows = body  # type: ignore[assignment]
                parts.append("<table border='1'>")
                parts.append("<tr>" + "".join(f"<th>{e(str(c))}</th>" for c in rows[0]) + "</tr>")
                for r in rows[1:]:
                    parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
                parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
