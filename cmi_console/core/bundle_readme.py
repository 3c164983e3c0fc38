"""The README.txt a compliance bundle opens with: what it holds and how to
check it, for an auditor who receives the zip and nothing else. It is a
listed file (its hash is in the signed manifest), so what it says about
the bundle is signed with the rest."""

from __future__ import annotations

from typing import Any

README = "README.txt"

# what each file is, in the order an auditor reads them (docs/export-bundle.md)
_FILES = (
    ("manifest.json", "every other file's SHA-256, the scope and the log's size"),
    ("manifest.sig", "the log key's Ed25519 signature over the manifest"),
    ("keys/log.vkey", "the log key (compare it with the one you were given)"),
    ("keys/principals.json", "every principal's signing keys, with when each was valid"),
    ("log/checkpoint.note", "the signed checkpoint (tree size and root) this is cut from"),
    ("log/entries.jsonl", "the entries, each line its exact canonical bytes"),
    ("log/proofs.jsonl", "each entry's inclusion proof (a part of the log only)"),
    ("log/consistency.json", "the proof that the log only grew since --previous"),
    ("decisions.jsonl", "every signed decision among the entries"),
    ("validation/", "the validation runs the entries logged"),
    ("cards/", "a model card per version, Markdown and HTML"),
    ("csv/", "spreadsheet views; the .jsonl files are the record"),
)


def readme(manifest: dict[str, Any], log_key: str, members: list[str]) -> str:
    """The text for a bundle with this (unsigned) manifest, log key and files."""
    scope = manifest["scope"]
    size, count = manifest["log_size"], manifest["entries"]
    if scope["full"]:
        what = f"the whole log: entries 0 to {size - 1}, {size} in all"
    else:
        parts = [f"model {scope['model']}"] if scope["model"] else []
        parts += [f"{k} {scope[k]}" for k in ("since", "until") if scope[k]]
        what = (
            f"{count} entr{'y' if count == 1 else 'ies'} of a log of {size} "
            f"({', '.join(parts)}), each with its inclusion proof"
        )
    present = [(f, why) for f, why in _FILES if any(n.startswith(f) for n in members)]
    width = max(len(f) for f, _ in present)
    return "\n".join(
        [
            "cmi-console compliance bundle",
            "",
            f"Exported {manifest['created_at']} by {manifest['exported_by'] or 'no principal'}",
            f"from the audit log {manifest['origin']}.",
            f"It holds {what}.",
            "",
            "Check it on any machine, with no database and no workspace, where",
            "cmi-console is installed:",
            "",
            '    cmi audit verify-bundle BUNDLE.zip --log-key "LOG KEY"',
            "",
            "LOG KEY is the key the organization gave you, not one read from this",
            "bundle: a bundle carries the key it was signed with, which proves",
            "nothing by itself. This one was signed with",
            "",
            f"    {log_key.strip()}",
            "",
            "Exit 0: every file is as signed, every entry is in the signed log,",
            "every decision's signature verifies with a key valid at its time.",
            "Exit 4: each fault is named with the file or entry it is in.",
            "",
            "Or check it with a verifier of your own: the formats and every check",
            "are specified in cmi-console's docs/export-bundle.md and",
            "docs/audit-log-format.md.",
            "",
            "Files:",
            *(f"  {f:<{width}}  {why}" for f, why in present),
            "",
        ]
    )
