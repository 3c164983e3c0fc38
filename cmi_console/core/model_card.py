"""Model cards for export bundles: `sections(card)` turns the gathered facts
into titled blocks that core.documents renders as Markdown and as HTML, so
the two files never say different things."""

from __future__ import annotations

import json
from typing import Any

from cmi_console.core import documents
from cmi_console.core.documents import Section, table_or
from cmi_console.core.recipe import recorded


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "" if value is None else str(value)


def sections(card: dict[str, Any]) -> list[Section]:
    v = card["version"]
    out: list[Section] = []
    use = [card.get("model_description") or "No intended use recorded for the model."]
    if v.get("description"):
        use.append(f"This version: {v['description']}")
    use.append(f"Risk tier: {card.get('tier') or '-'}. Owner: {card.get('owner')}.")
    out.append(("Intended use", [("p", use)]))
    data = [["role", "dataset", "sha256"]] + [
        [d["role"], d["dataset"], d["sha256"]] for d in v.get("datasets", [])
    ]
    out.append(("Data", table_or(data, "No dataset linked.")))
    metrics = [["metric", "value"]] + [[k, _fmt(x)] for k, x in sorted(v["metrics"].items())]
    run = card.get("run") or {}
    for k, x in sorted((run.get("metrics") or {}).items()):
        if k not in v["metrics"]:
            metrics.append([f"{k} (training run)", _fmt(x)])
    out.append(("Metrics", table_or(metrics, "None.")))
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
    out.append(("Validation", table_or(checks, "Never validated.")))
    out.append(("Fairness", table_or(fairness, "No fairness check was run.")))
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
    for a in (card.get("production") or {}).get("alerts", []):
        limits.append(f"Monitoring alert ({a['kind']}, {a['status']}): {a['message']}")
    out.append(("Limitations", [("p", limits or ["No failing or warning check recorded."])]))
    out.append(("Production", _production(card.get("production") or {})))
    recipe_sha = recorded(run.get("params"))[0]
    lineage = [
        f"Datasets: {', '.join(d['dataset'] for d in v.get('datasets', [])) or 'none'}",
        f"Training run: {v.get('run') or 'none'}"
        + (f" (recipe {recipe_sha[:12]})" if recipe_sha else ""),
        f"Artifact: {v['artifact_sha256']} ({v['artifact_format']}, {v['artifact_size']} bytes)",
        f"Registered by {v['author']} at {v['created_at']}; stage {v['stage']}, "
        f"status {v['status']}.",
    ]
    out.append(("Lineage", [("p", lineage)]))
    return out


def _production(p: dict[str, Any]) -> list[Any]:
    """Every traffic change of the version's rollouts, and its monitoring."""
    from cmi_console.core.deployments import shares_text

    rows = [["time", "environment", "action", "status", "traffic after", "by"]] + [
        [e["at"], e["environment"], e["action"], e["status"], shares_text(e["shares"]), e["by"]]
        for e in p.get("events", [])
    ]
    blocks = table_or(rows, "Never deployed.")
    last = p.get("last_window")
    text = f"{p.get('windows', 0)} monitoring window(s)."
    if last:
        text += " Latest: " + ", ".join(f"{k} {_fmt(x)}" for k, x in sorted(last.items())) + "."
    return [*blocks, ("p", [text])]


def title(card: dict[str, Any]) -> str:
    v = card["version"]
    return f"Model card: {v['model']} version {v['version']}"


def markdown(card: dict[str, Any]) -> str:
    return documents.markdown(title(card), sections(card))


def to_html(card: dict[str, Any]) -> str:
    return documents.to_html(title(card), sections(card))
