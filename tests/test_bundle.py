"""Compliance export bundles: written by `cmi audit export`, checked offline by
`cmi audit verify-bundle` with no workspace; tampering is named precisely."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok, to_production

from cmi_console.core import bundle, keys, merkle
from cmi_console.core.bundle_readme import README


@pytest.fixture
def governed(populated: Workspace) -> Workspace:
    ws = add_staff(populated)
    to_production(ws, 1)
    return ws


def export(ws: Workspace, out: Path, *args: str) -> dict[str, Any]:
    return ok(ws.cli("audit", "export", "--out", str(out), "--json", *args)).json()


def check(ws: Workspace, path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    # no --home and no --db: verify-bundle must not need a workspace
    ws.capsys.readouterr()
    r = ws.cli("audit", "verify-bundle", str(path), "--json", *args, as_=None)
    return r.code, r.json()


def vkey(ws: Workspace) -> str:
    return (ws.home / "keys" / "log.vkey").read_text().strip()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def rewrite(path: Path, files: dict[str, bytes], *, fix_hashes: bool = True) -> None:
    """An attacker's edit: change members and, as they can, the manifest's hashes."""
    if fix_hashes:
        manifest = json.loads(files[bundle.MANIFEST])
        manifest["files"] = {
            n: hashlib.sha256(b).hexdigest()
            for n, b in files.items()
            if n not in (bundle.MANIFEST, bundle.SIGNATURE)
        }
        files[bundle.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["kind"], p["where"]) for p in report["problems"]]


def test_a_full_export_verifies_offline(governed: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "all.zip"
    summary = export(governed, out)
    log = ok(governed.cli("audit", "log", "-n", "1000", "--json")).json()
    assert summary["full"] and summary["entries"] == summary["log_size"] == len(log)
    assert summary["decisions"] == sum(1 for e in log if "sig" in e)
    assert summary["validation_reports"] >= 2 and summary["model_cards"] == 2
    code, report = check(governed, out, "--log-key", vkey(governed))
    assert code == 0, report
    assert report["log_key"] == "pinned" and report["entries"] == len(log)
    files = members(out)
    lines = files[bundle.ENTRIES].splitlines()
    assert [orjson.loads(x)["seq"] for x in lines] == list(range(len(log)))
    # exact bytes: every line hashes to the log's stored hash
    stored = {e["seq"]: e["hash"] for e in log}
    assert all(merkle.leaf_hash(x).hex() == stored[i] for i, x in enumerate(lines))
    card = files["cards/cancer-v1.md"].decode()
    for section in (
        "Intended use",
        "Data",
        "Metrics",
        "Fairness",
        "Approvals",
        "Limitations",
        "Production",
    ):
        assert f"## {section}" in card
    assert "Never deployed." in card
    assert "bob" in card and "<h2>Lineage</h2>" in files["cards/cancer-v1.html"].decode()
    assert b"seq,time,actor,action,subject,hash" in files["csv/entries.csv"]


def test_a_subset_carries_proofs_equal_to_the_reference(
    governed: Workspace, tmp_path: Path
) -> None:
    ws = governed
    ok(ws.cli("model", "create", "other", as_="alice"))
    out = tmp_path / "cancer.zip"
    summary = export(ws, out, "--model", "cancer")
    assert not summary["full"] and 0 < summary["entries"] < summary["log_size"]
    files = members(out)
    entries = [orjson.loads(x) for x in files[bundle.ENTRIES].splitlines()]
    # the model's own entries, and the datasets its versions came from
    mine = ("model:cancer", "policy:cancer", "dataset:cancer:1")
    assert all(e["subject"] in mine or e["subject"].startswith("version:cancer:") for e in entries)
    assert "dataset:cancer:1" in {e["subject"] for e in entries}
    log = ok(ws.cli("audit", "log", "-n", "1000", "--reverse", "--json")).json()
    leaves = [bytes.fromhex(e["hash"]) for e in log][: summary["log_size"]]
    for line in files[bundle.PROOFS].splitlines():
        p = orjson.loads(line)
        assert [bytes.fromhex(h) for h in p["path"]] == merkle.inclusion_proof(p["seq"], leaves)
    code, report = check(ws, out, "--log-key", vkey(ws))
    assert code == 0, report


def test_a_consistency_proof_from_an_earlier_checkpoint(
    governed: Workspace, tmp_path: Path
) -> None:
    ws = governed
    earlier = tmp_path / "earlier.checkpoint"
    ok(ws.cli("audit", "checkpoint", "--out", str(earlier)))
    ok(ws.cli("alias", "set", "cancer", "champion", "1", as_="alice"))
    out = tmp_path / "since.zip"
    summary = export(ws, out, "--since", "2000-01-01", "--previous", str(earlier))
    old_size = int(earlier.read_text().split("\n")[1])
    assert summary["consistency_from"] == old_size
    doc = json.loads(members(out)[bundle.CONSISTENCY])
    log = ok(ws.cli("audit", "log", "-n", "1000", "--reverse", "--json")).json()
    leaves = [bytes.fromhex(e["hash"]) for e in log][: summary["log_size"]]
    assert [bytes.fromhex(h) for h in doc["proof"]] == merkle.consistency_proof(old_size, leaves)
    code, report = check(ws, out, "--previous", str(earlier))
    assert code == 0 and report["consistent_with"] == old_size, report
    # the auditor's own checkpoint must be the one the bundle proves from
    other = tmp_path / "other.checkpoint"
    ok(ws.cli("audit", "checkpoint", "--out", str(other)))
    code, report = check(ws, out, "--previous", str(other))
    assert code == 4 and ("consistency-invalid", bundle.CONSISTENCY) in kinds(report)


def test_a_bundle_opens_with_what_it_holds_and_how_to_check_it(
    governed: Workspace, tmp_path: Path
) -> None:
    """An auditor receives a zip and nothing else: it opens with a README
    saying what it holds, the command that checks it, and that the key to
    check it with comes from the organization, not from the bundle."""
    full, part = tmp_path / "all.zip", tmp_path / "part.zip"
    size = export(governed, full)["log_size"]
    count = export(governed, part, "--model", "cancer")["entries"]
    for path, holds in (
        (full, f"It holds the whole log: entries 0 to {size - 1}, {size} in all."),
        (part, f"It holds {count} entries of a log of {size} (model cancer), each with its"),
    ):
        files = members(path)
        text = files[README].decode()
        assert README in json.loads(files[bundle.MANIFEST])["files"]  # signed with the rest
        assert text.startswith("cmi-console compliance bundle\n\nExported 20")
        assert holds in text and " by root\nfrom the audit log " in text
        assert 'cmi audit verify-bundle BUNDLE.zip --log-key "LOG KEY"' in text
        assert f"\n    {vkey(governed)}\n" in text
        listed = {ln.split()[0] for ln in text.split("Files:\n")[1].splitlines() if ln}
        assert (bundle.PROOFS in listed) == (path == part)  # only what the bundle has
        assert {bundle.MANIFEST, bundle.ENTRIES, "cards/"} <= listed
    # its words are as signed: an attacker's key put in them is named
    files = members(part)
    files[README] = files[README].replace(vkey(governed).encode(), b"attacker-key")
    rewrite(part, files, fix_hashes=False)
    code, report = check(governed, part)
    assert code == 4 and kinds(report) == [("file-modified", README)]
    # a bundle written before it had one (the same, re-signed without it) verifies
    files = members(full)
    del files[README]
    manifest = json.loads(files[bundle.MANIFEST])
    del manifest["files"][README]
    files[bundle.MANIFEST] = json.dumps(manifest).encode()
    files[bundle.SIGNATURE] = bundle.sign_manifest(manifest, governed.ctx().log_key()).encode()
    rewrite(full, files, fix_hashes=False)
    code, report = check(governed, full, "--log-key", vkey(governed))
    assert code == 0, report


@pytest.fixture
def subset(governed: Workspace, tmp_path: Path) -> Path:
    out = tmp_path / "subset.zip"
    export(governed, out, "--model", "cancer")
    return out


def test_a_modified_entry_is_named(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    lines = files[bundle.ENTRIES].splitlines()
    target = next(i for i, x in enumerate(lines) if b'"actor":"bob"' in x)
    seq = orjson.loads(lines[target])["seq"]
    lines[target] = lines[target].replace(b'"actor":"bob"', b'"actor":"eve"', 1)
    files[bundle.ENTRIES] = b"\n".join(lines) + b"\n"
    rewrite(subset, files)
    code, report = check(governed, subset)
    assert code == 4
    assert ("manifest-signature", bundle.SIGNATURE) in kinds(report)
    assert ("proof-invalid", f"entry {seq}") in kinds(report)


def test_a_modified_entry_without_fixing_the_manifest(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    assert b'"alice"' in files[bundle.ENTRIES]
    files[bundle.ENTRIES] = files[bundle.ENTRIES].replace(b'"alice"', b'"mallory"', 1)
    rewrite(subset, files, fix_hashes=False)
    code, report = check(governed, subset)
    assert code == 4 and ("file-modified", bundle.ENTRIES) in kinds(report)


def test_a_removed_file_is_named(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    del files["cards/cancer-v1.md"]
    rewrite(subset, files, fix_hashes=False)
    code, report = check(governed, subset)
    assert code == 4 and kinds(report) == [("missing-file", "cards/cancer-v1.md")]


def test_a_swapped_public_key_is_caught(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    principals = json.loads(files[bundle.PRINCIPALS])
    bob = next(k for k in principals if k["principal"] == "bob")
    bob["public_key"] = keys.b64(keys.public_raw(keys.generate()))
    files[bundle.PRINCIPALS] = json.dumps(principals).encode()
    rewrite(subset, files)
    code, report = check(governed, subset)
    assert code == 4
    found = kinds(report)
    assert ("manifest-signature", bundle.SIGNATURE) in found
    assert any(k == "signature-invalid" and w.startswith("entry ") for k, w in found)


def test_a_forged_manifest_signature_is_caught(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    manifest = json.loads(files[bundle.MANIFEST])
    manifest["exported_by"] = "someone else"
    files[bundle.MANIFEST] = json.dumps(manifest).encode()
    files[bundle.SIGNATURE] = bundle.sign_manifest(manifest, keys.generate()).encode()
    rewrite(subset, files, fix_hashes=False)
    code, report = check(governed, subset)
    assert code == 4 and kinds(report) == [("manifest-signature", bundle.SIGNATURE)]


def test_a_manifest_naming_a_member_twice_is_malformed(governed: Workspace, subset: Path) -> None:
    """The signature covers the manifest as parsed, and orjson keeps a name's
    last value: a forged `exported_by` put first passed, while a reader that
    keeps the first value (as some JSON parsers do) saw the forgery."""
    files = members(subset)
    files[bundle.MANIFEST] = b'{"exported_by": "mallory",' + files[bundle.MANIFEST].lstrip()[1:]
    rewrite(subset, files, fix_hashes=False)
    code, report = check(governed, subset)
    assert code == 4 and kinds(report) == [("malformed", bundle.MANIFEST)]
    assert "'exported_by' appears twice" in report["problems"][0]["message"]


def test_a_bundle_signed_by_another_log_is_refused_when_the_key_is_pinned(
    governed: Workspace, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cmi_console.services.setup import init_workspace

    other = init_workspace(tmp_path / "other", admin="root")
    other_key = (other.workspace.keys_dir / "log.vkey").read_text().strip()
    code, report = check(governed, subset, "--log-key", other_key)
    assert code == 4 and ("log-key-mismatch", bundle.LOG_KEY) in kinds(report)


def test_a_proof_that_does_not_match_is_named(governed: Workspace, subset: Path) -> None:
    files = members(subset)
    lines = files[bundle.PROOFS].splitlines()
    p = orjson.loads(lines[0])
    p["path"][0] = "00" * 32
    lines[0] = orjson.dumps(p)
    files[bundle.PROOFS] = b"\n".join(lines) + b"\n"
    rewrite(subset, files)
    code, report = check(governed, subset)
    assert code == 4 and ("proof-invalid", f"entry {p['seq']}") in kinds(report)


def test_not_a_bundle_is_bad_input(governed: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    r = governed.cli("audit", "verify-bundle", str(junk), as_=None)
    assert r.code == 2 and "not a readable zip" in r.err and "\n" not in r.err.strip()


def test_export_refuses_bad_input_and_writes_nothing(governed: Workspace, tmp_path: Path) -> None:
    taken = tmp_path / "taken.zip"
    taken.write_text("mine")
    r = governed.cli("audit", "export", "--out", str(taken))
    assert r.code == 2 and "already exists" in r.err and taken.read_text() == "mine"
    missing = tmp_path / "m.zip"
    r = governed.cli("audit", "export", "--out", str(missing), "--model", "nope")
    assert r.code == 2 and "does not exist" in r.err
    assert not missing.exists() and not list(tmp_path.glob(".m.zip*"))


def test_a_bundle_that_does_not_fit_is_one_line_and_leaves_nothing(
    governed: Workspace, tmp_path: Path
) -> None:
    """A full disk mid-export (here: a file size limit, the same errno class)
    was an internal error, and zipfile's own error hid the first one, its
    finaliser printing a traceback; a folder that takes no new file though
    it looks writable (/proc) was one too."""
    from file_limit import cli_with_file_limit

    size = export(governed, tmp_path / "whole.zip")  # how large this bundle is
    whole = (tmp_path / "whole.zip").stat().st_size
    limit = 40_000  # above SQLite's 32 KiB shared-memory file, below the bundle
    assert whole > limit, size
    out = tmp_path / "cut.zip"
    done = cli_with_file_limit(
        governed, limit, tmp_path, "audit", "export", "-q", "--out", str(out)
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"cmi: --out: cannot write {out} (File too large)"
    assert list(tmp_path.glob("*cut.zip*")) == []
    if Path("/proc").is_dir():
        r = governed.cli("audit", "export", "--out", "/proc/bundle.zip")
        assert r.code == 2 and "--out: cannot write /proc/bundle.zip (" in r.err, r.err


def test_checking_a_bundle_restores_the_collector(governed: Workspace, subset: Path) -> None:
    import gc

    from cmi_console.core import bundle

    assert bundle.verify(subset).ok and gc.isenabled()
    gc.disable()
    try:
        assert bundle.verify(subset).ok and not gc.isenabled()
    finally:
        gc.enable()


# every JSON value a hostile bundle may put where the verifier expects another
SHAPES: list[Any] = [None, [], {}, "x", -1, 2**70, 1.5, [[]], {"a": {}}]


def _mutations(files: dict[str, bytes]) -> list[tuple[str, dict[str, bytes]]]:
    """Each JSON document of the bundle (a .jsonl file's first line) replaced
    by every shape, and each of its top-level values too."""
    out = []
    for name, data in sorted(files.items()):
        if not name.endswith((".json", ".jsonl")):
            continue
        lines = data.split(b"\n") if name.endswith(".jsonl") else [data]
        doc = orjson.loads(lines[0])
        variants = [(name, shape) for shape in SHAPES]
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):  # a list of records
            variants += [
                (f"{name}[0].{k}", [{**doc[0], k: s}, *doc[1:]])
                for k in sorted(doc[0])
                for s in SHAPES
                if s != doc[0][k]
            ]
        if isinstance(doc, dict):
            variants += [
                (f"{name}:{k}", {**doc, k: s}) for k in sorted(doc) for s in SHAPES if s != doc[k]
            ]
            # one level down: an object's members, a list's first object's members
            for k, inner in sorted(doc.items()):
                first = inner[0] if isinstance(inner, list) and inner else None
                if isinstance(inner, dict):
                    variants += [
                        (f"{name}:{k}.{j}", {**doc, k: {**inner, j: s}})
                        for j in sorted(inner)
                        for s in SHAPES
                        if s != inner[j]
                    ]
                elif isinstance(first, dict):
                    variants += [
                        (f"{name}:{k}[0].{j}", {**doc, k: [{**first, j: s}, *inner[1:]]})
                        for j in sorted(first)
                        for s in SHAPES
                        if s != first[j]
                    ]
        for label, new in variants:
            edited = dict(files)
            edited[name] = b"\n".join([json.dumps(new).encode(), *lines[1:]])
            out.append((label, edited))
    return out


def test_hostile_shapes_are_reported_never_a_crash(governed: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "full.zip"
    export(governed, path)
    files = members(path)
    cases = _mutations(files)
    assert len(cases) > 100
    crashed = []
    for i, (label, edited) in enumerate(cases):
        hostile = tmp_path / f"hostile-{i}.zip"
        # the manifest's own hashes fixed where it is still an object of files
        rewrite(hostile, edited, fix_hashes=not label.startswith(bundle.MANIFEST))
        try:
            report = bundle.verify(hostile, pinned_key=vkey(governed))
        except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes
            crashed.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        assert not report.ok, label
    assert crashed == [], "\n".join(crashed)


def test_zip_bombs_are_reported_not_read_into_memory(
    governed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "full.zip"
    export(governed, path)
    files = members(path)
    # a real one: 65 MiB of spaces that pack into a few hundred kilobytes
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, b" " * (65 << 20) if name == bundle.MANIFEST else data)
    assert bomb.stat().st_size < 2 << 20
    report = bundle.verify(bomb, pinned_key=vkey(governed)).as_json()
    assert ("too-large", bundle.MANIFEST) in kinds(report)
    # the same rule for every file read whole, and for a line of the log
    monkeypatch.setattr(bundle, "MAX_MEMBER", 100)
    assert ("too-large", bundle.MANIFEST) in kinds(bundle.verify(path).as_json())
    monkeypatch.setattr(bundle, "MAX_MEMBER", 64 << 20)
    monkeypatch.setattr(bundle, "MAX_LINE", 50)
    found = kinds(bundle.verify(path, pinned_key=vkey(governed)).as_json())
    assert ("too-large", f"{bundle.ENTRIES} line 1") in found


def _member_at(data: bytes, name: str) -> tuple[int, int, int]:
    """(local header offset, data offset, packed size) of a member in zip bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
    head = info.header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, head + 26)
    return head, head + 30 + name_len + extra_len, info.compress_size


def _set_header(data: bytearray, name: str, flags: int = 0, method: int | None = None) -> None:
    """Set flag bits or the compression method in both of a member's headers."""
    head, _, _ = _member_at(bytes(data), name)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        (name_len,) = struct.unpack_from("<H", data, central + 28)
        if data[central + 46 : central + 46 + name_len] == name.encode():
            break
        central = data.find(b"PK\x01\x02", central + 4)
    for flag_at, method_at in ((head + 6, head + 8), (central + 8, central + 10)):
        struct.pack_into("<H", data, flag_at, struct.unpack_from("<H", data, flag_at)[0] | flags)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)


def _damaged(data: bytes, name: str, how: str) -> bytes:
    out = bytearray(data)
    if how == "flipped bit":  # in the middle of the packed bytes
        _, start, size = _member_at(data, name)
        out[start + size // 2] ^= 0x10
    elif how == "unknown method":
        _set_header(out, name, method=99)
    else:  # "encrypted"
        _set_header(out, name, flags=0x1)
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "how"),
    [
        (bundle.ENTRIES, "flipped bit"),  # stored: the CRC finds it
        (bundle.PRINCIPALS, "flipped bit"),  # deflated: the stream or the CRC
        (bundle.DECISIONS, "flipped bit"),
        (bundle.CHECKPOINT, "unknown method"),
        ("csv/entries.csv", "encrypted"),
    ],
)
def test_a_damaged_member_is_named_never_a_crash(
    governed: Workspace, tmp_path: Path, name: str, how: str
) -> None:
    """A bit flipped in transit, or a member zipfile cannot unpack, is a fault
    of the bundle: exit 4 naming the member, not an internal error."""
    path = tmp_path / "full.zip"
    export(governed, path)
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(_damaged(path.read_bytes(), name, how))
    code, report = check(governed, damaged, "--log-key", vkey(governed))
    assert code == 4
    assert ("unreadable", name) in kinds(report)
    assert kinds(report).count(("unreadable", name)) == 1
    assert ("file-modified", name) not in kinds(report)  # one finding for one fault
    r = governed.cli("audit", "verify-bundle", str(damaged), as_=None)
    assert r.code == 4 and r.err.startswith(f"bundle rejected: unreadable: {name}: ")


def test_a_second_member_of_the_same_name_is_refused(governed: Workspace, tmp_path: Path) -> None:
    """zipfile reads the last member of a name and other unzip tools the
    first: a forged first copy in front of the genuine one would be what an
    auditor opens, while the check passed on the other."""
    path = tmp_path / "full.zip"
    export(governed, path)
    files = members(path)
    forged = files[bundle.ENTRIES].replace(b'"actor":"bob"', b'"actor":"eve"')
    assert forged != files[bundle.ENTRIES]
    doubled = tmp_path / "doubled.zip"
    with zipfile.ZipFile(doubled, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr(bundle.ENTRIES, forged)
        for member, data in files.items():
            z.writestr(member, data)
    code, report = check(governed, doubled, "--log-key", vkey(governed))
    assert code == 4 and kinds(report) == [("duplicate-file", bundle.ENTRIES)]


def test_a_version_whose_run_was_recorded_by_hand_is_exported(
    populated: Workspace, tmp_path: Path
) -> None:
    """`cmi run record --params` takes any object: a `recipe_sha256` that was
    no string made every export holding that version's model card fail
    (exit 70), so one developer's run could block an auditor's bundle."""
    ws = populated
    ok(ws.cli("run", "record", "--params", '{"recipe_sha256": 5}', "--key", "by-hand", as_="alice"))
    art = tmp_path / "by-hand.bin"
    art.write_bytes(b"an artifact registered with a hand-made run")
    ok(
        ws.cli(
            "version", "register", "cancer", "--artifact", str(art), "--run", "by-hand", as_="alice"
        )
    )
    out = tmp_path / "b.zip"
    export(ws, out, "--model", "cancer")
    with zipfile.ZipFile(out) as z:
        card = z.read("cards/cancer-v3.md").decode()
    assert "Training run: by-hand" in card and "(recipe" not in card
    assert check(ws, out)[0] == 0


def test_an_export_matching_no_entry_says_so(governed: Workspace, tmp_path: Path) -> None:
    """`--since 2062-01-01` for 2026 wrote a bundle of no entries, exit 0,
    and said nothing: an auditor was sent a bundle that holds nothing. It
    is still written (a quiet month's bundle is one), and the export says so."""
    ws = governed
    r = ok(
        ws.cli("audit", "export", "--out", str(tmp_path / "q.zip"), "--since", "2062-01-01", "-q")
    )
    assert r.err.strip() == (
        "note: no entry matched --model/--since/--until; the bundle holds the checkpoint "
        "and keys only"
    )
    r = ok(ws.cli("audit", "export", "--out", str(tmp_path / "all.zip"), "-q", "--json"))
    assert r.err == "" and r.json()["entries"] > 0


def _stdlib_directory_size(path: Path) -> int:
    """The central directory's size as zipfile itself reads it (a private
    helper, used here only to check ours against it)."""
    with open(path, "rb") as fh:
        return int(zipfile._EndRecData(fh)[zipfile._ECD_SIZE])  # type: ignore[attr-defined]


def test_the_zip_directory_size_is_read_as_zipfile_reads_it(tmp_path: Path) -> None:
    """What bundle.verify bounds must be what zipfile then reads: a plain
    zip, one whose comment holds the end record's signature, and a zip64
    one (over 65,535 members: the zip64 end record's figure is the one)."""
    from cmi_console.core import zip_end

    plain, commented, big = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("x", b"1")
    with zipfile.ZipFile(commented, "w") as z:
        z.writestr("x", b"1")
        z.comment = b"PK\x05\x06 not the end record" + b"c" * 100
    with zipfile.ZipFile(big, "w") as z:
        for i in range(0x10000 + 5):
            z.writestr(str(i), b"")
    for path in (plain, commented, big):
        with open(path, "rb") as fh:
            assert zip_end.central_directory_size(fh) == _stdlib_directory_size(path), path
    with open(big, "rb") as fh:
        fh.seek(-22 + 10, 2)  # the classic record gives up on the count: zip64 is read
        assert struct.unpack("<H", fh.read(2))[0] == 0xFFFF
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x05\x06")  # a signature, but no whole record
    with open(junk, "rb") as fh:
        assert zip_end.central_directory_size(fh) is None


def test_a_zip_directory_too_big_to_open_is_refused_unread(
    governed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zipfile read the whole central directory and made an object of every
    member (~560 bytes) before any check: a hostile bundle of millions of
    tiny members cost gigabytes. The size the end record claims is bounded
    first; and an export never writes a bundle past that bound."""
    path = tmp_path / "full.zip"
    export(governed, path)
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<L", data, at + 12, 0x7FFFFFFF)  # claims a 2 GiB directory
    forged = tmp_path / "forged.zip"
    forged.write_bytes(bytes(data))
    r = governed.cli("audit", "verify-bundle", str(forged), as_=None)
    assert r.code == 2 and r.out == "", r.out
    assert r.err == (
        f"cmi: {forged}: its zip directory claims 2,147,483,647 bytes, more than a bundle "
        "has (32 MiB at most); not opened\n"
    ), r.err
    assert check(governed, path)[0] == 0  # a real bundle is well inside it

    # the same bound, met by a real directory, and export keeps to it
    real = _stdlib_directory_size(path)
    monkeypatch.setattr(bundle, "MAX_DIRECTORY", real - 1)
    r = governed.cli("audit", "verify-bundle", str(path), as_=None)
    assert r.code == 2 and f"claims {real:,} bytes" in r.err, r.err
    out = tmp_path / "again.zip"
    r = governed.cli("audit", "export", "--out", str(out))
    assert r.code == 2 and r.err.startswith("cmi: --out: the bundle would hold "), r.err
    assert "export part of the log with --model or --since/--until" in r.err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".again", "again"))]
