"""A validation run as JUnit XML (each check a testcase) and as Markdown for
a pull-request comment."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from cmi_console.core.documents import md_inline
from cmi_console.core.printable import printable

ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥"}
# XML 1.0 takes no control character but tab, newline and carriage return, and
# no U+FFFE, U+FFFF or lone surrogate, not even as a character reference: one
# such character (a column name from a data file) made the whole report
# unreadable to CI's JUnit parser. printable() escapes the controls.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _xml(value: Any) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", printable(str(value)))


def short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def junit(run: dict[str, Any]) -> str:
    results = run["results"]
    suite = ET.Element(
        "testsuite",
        name=_xml(f"cmi {run['model']}:{run['version']} {run['suite']}"),
        tests=str(len(results)),
        failures=str(sum(r["status"] == "fail" and r["blocking"] for r in results)),
        errors=str(sum(r["status"] == "error" and r["blocking"] for r in results)),
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    for key in ("result_sha256", "policy_sha256", "artifact_sha256", "seed"):
        ET.SubElement(props, "property", name=key, value=_xml(run.get(key)))
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=_xml(f"cmi.{r['kind']}"), name=_xml(r["label"])
        )
        message = _xml(r["explanation"])
        if r["status"] in ("fail", "error") and r["blocking"]:
            tag = "failure" if r["status"] == "fail" else "error"
            node = ET.SubElement(case, tag, message=message)
            node.text = json.dumps({"value": r["value"], "threshold": r["threshold"]}, default=str)
        elif r["status"] != "pass":
            ET.SubElement(case, "system-out").text = f"{r['status']} (non-blocking): {message}"
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def markdown(run: dict[str, Any]) -> str:
    verdict = "passed" if run["status"] == "pass" else "**failed**"
    lines = [
        f"### cmi validation: `{run['model']}:{run['version']}` suite `{run['suite']}` {verdict}",
        "",
        "| check | status | value | threshold | explanation |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in run["results"]:
        status = f"{ICONS.get(r['status'], '')} {r['status']}" + (
            "" if r["blocking"] else " (non-blocking)"
        )
        cells = [r["label"], status, short(r["value"]), short(r["threshold"]), r["explanation"]]
        # a line break or a control character in a cell (a column name from a
        # data file) had broken the table or acted on the viewer
        lines.append("| " + " | ".join(map(md_inline, cells)) + " |")
    lines += [
        "",
        f"Result `{run['result_sha256'][:16]}` · policy `{run['policy_sha256'][:16]}` · "
        f"artifact `{run['artifact_sha256'][:16]}` · run #{run['run']}",
        "",
    ]
    return "\n".join(lines)
