"""The registry through the CLI, with --json, on both backends."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import Workspace
from gate_helpers import ok


def test_versions_tags_aliases_and_search(populated: Workspace) -> None:
    ws = populated
    v2 = ws.cli("version", "show", "cancer:2", "--json").json()
    assert v2["author"] == "alice" and v2["artifact_format"] == "skops"
    assert v2["tags"] == {"c": "1.0", "team": "onc"} and v2["metrics"] == {"auc": 0.92}
    assert v2["datasets"][0]["dataset"] == "cancer:1"
    assert ws.cli("version", "show", "cancer", "--json").json()["version"] == 2  # latest

    found = ws.cli("version", "search", "--tag", "c=0.1", "--json").json()
    assert [(v["model"], v["version"]) for v in found] == [("cancer", 1)]
    found = ws.cli(
        "version", "search", "--tag", "team=onc", "--metric", "auc>=0.915", "--json"
    ).json()
    assert [v["version"] for v in found] == [2]

    assert ws.cli("alias", "set", "cancer", "champion", "1", as_="alice").code == 0
    assert ws.cli("version", "show", "cancer@champion", "--json").json()["version"] == 1
    moved = ws.cli("alias", "set", "cancer", "champion", "2", "--json", as_="alice").json()
    assert moved["previous"] == 1 and moved["created"] is True
    # set again (a CI job's retry): answered, nothing written; it had failed, exit 2
    entries = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli("alias", "set", "cancer", "champion", "2", "--json", as_="alice")
    assert again.code == 0 and again.json()["created"] is False
    assert again.err.strip() == "note: cancer@champion points at version 2 already; nothing written"
    deleted = ok(ws.cli("alias", "delete", "cancer", "champion", "--json", as_="alice"))
    assert deleted.json()["created"] is True and deleted.err == ""
    assert ws.cli("version", "show", "cancer@champion").code == 2
    # deleted again (a retry): answered with that deletion, by anyone; it had
    # been refused, exit 2, as if the alias had never been there
    seq = ws.cli("audit", "log", "-n", "1", "--json").json()[0]["seq"]
    again = ws.cli("alias", "delete", "cancer", "champion", "--json", as_="root")
    assert again.code == 0 and again.json()["created"] is False and again.json()["seq"] == seq
    assert again.err.strip() == (
        f"note: cancer@champion was deleted already by alice (entry #{seq}); nothing written"
    )
    # an alias never there (a typo) is still refused
    assert ws.cli("alias", "delete", "cancer", "champoin", as_="alice").code == 2

    tagged = ws.cli(
        "version", "tag", "cancer:1", "--tag", "c=0.2", "--remove", "team", "--json", as_="alice"
    ).json()
    assert tagged["tags"] == {"c": "0.2"}
    retag = ws.cli("version", "tag", "cancer:1", "--tag", "c=0.2", as_="alice")
    assert retag.code == 0 and "cancer:1's tags are as asked already; nothing written" in retag.err
    # the removal retried too (it was refused, exit 2: "has no tag 'team'")
    redo = ws.cli("version", "tag", "cancer:1", "--tag", "c=0.2", "--remove", "team", as_="alice")
    assert redo.code == 0 and "cancer:1's tags are as asked already; nothing written" in redo.err
    log = ws.cli("audit", "log", "-n", "1000", "--json").json()
    assert len(log) == entries + 2  # the delete and the first tagging only
    # a tag the version does not have is still refused: a typo, not a retry
    r = ws.cli("version", "tag", "cancer:1", "--remove", "tema", as_="alice")
    assert (r.code, r.err.strip()) == (2, "cmi: --remove: cancer:1 has no tag 'tema'")
    # a retry that also sets a new tag records the new tag, and no removal
    ok(ws.cli("version", "tag", "cancer:1", "--tag", "d=1", "--remove", "team", as_="alice"))
    last = ws.cli("audit", "log", "-n", "1", "--json").json()[0]
    assert (last["action"], last["data"]) == ("version.tag", {"set": {"d": "1"}, "removed": []})
    # set again after its removal: then removing it is new work once more
    ok(ws.cli("version", "tag", "cancer:1", "--tag", "team=onc", as_="alice"))
    ok(ws.cli("version", "tag", "cancer:1", "--remove", "team", as_="alice"))
    assert "team" not in ws.cli("version", "show", "cancer:1", "--json").json()["tags"]
    models = ws.cli("model", "list", "--json").json()
    assert models[0]["name"] == "cancer" and models[0]["versions"] == 2 and models[0]["latest"] == 2
    assert ws.cli("audit", "verify").code == 0


def test_an_empty_listing_says_when_its_filter_names_nothing(populated: Workspace) -> None:
    """`--actor Alice` (principals are lower case), `--stage prod` or `--tag
    Team=onc` listed nothing and said nothing: an investigator could read "no entries" as
    "did nothing". A filter that names what exists and matches nothing stays
    quiet, and --json output stays JSON alone."""
    ws = populated
    r = ws.cli("audit", "log", "--actor", "Alice", "--json")
    assert r.code == 0 and r.json() == []
    assert r.err.strip() == "note: no principal is named 'Alice'; did you mean 'alice'?"
    r = ws.cli("audit", "log", "--actor", "nobody-at-all")
    assert r.err.strip() == "note: no principal is named 'nobody-at-all'"
    r = ws.cli("audit", "log", "--actor", "bob", "--action", "version.*", "--json")
    assert r.code == 0 and r.json() == [] and r.err.strip() == ""  # bob exists, did no such thing
    # an action, a subject, a stage, a tag or a metric typed wrong listed
    # nothing and said nothing (tags are compared exactly); filters that each
    # name what exists, and that no entry or version meets together, stay quiet
    for args, notes in (
        (
            ["audit", "log", "--action", "version.regster", "--subject", "version:Cancer:1"],
            [
                "no entry has the action 'version.regster'; did you mean 'version.register'?",
                "no entry has the subject 'version:Cancer:1'; did you mean 'version:cancer:1'?",
            ],
        ),
        (
            ["audit", "log", "--action", "gate.*", "--subject", "model:Cancer*"],
            [
                "no entry's action starts with 'gate.'",
                "no entry's subject starts with 'model:Cancer'; did you mean 'model:cancer*'?",
            ],
        ),
        (["audit", "log", "--action", "version.register", "--subject", "model:cancer"], []),
        (
            ["version", "search", "--stage", "prod"],
            ["no version is in stage 'prod' (in use: development)"],
        ),
        (
            ["version", "search", "--tag", "Team=onc", "--metric", "AUC>=0.9"],
            [
                "no version has a tag 'Team'; did you mean 'team'?",
                "no version has a metric 'AUC'; did you mean 'auc'?",
            ],
        ),
        (
            ["version", "search", "--tag", "team=ONC", "--metric", "f1>=0.5"],
            [
                "no version has the tag team=ONC; did you mean 'onc'?",
                "no version has a metric 'f1'",
            ],
        ),
        (["version", "search", "--stage", "development", "--tag", "team=x"], []),
        (["version", "search", "--tag", "team=onc", "--metric", "auc>=0.99"], []),
    ):
        r = ws.cli(*args, "--json")
        assert r.code == 0 and r.json() == [], (args, r.err)
        assert r.err.strip().splitlines() == [f"note: {n}" for n in notes], (args, r.err)


def test_every_write_is_an_audit_entry(populated: Workspace) -> None:
    log = populated.cli("audit", "log", "--json", "-n", "100", "--reverse").json()
    actions = [e["action"] for e in log]
    assert actions == [
        "workspace.init",
        "policy.activate",
        "user.add",
        "user.add",
        "dataset.register",
        "model.create",
        "version.register",
        "version.register",
    ]
    assert [e["seq"] for e in log] == list(range(len(log)))
    by_alice = populated.cli(
        "audit", "log", "--actor", "alice", "--action", "version.*", "--json"
    ).json()
    assert {e["subject"] for e in by_alice} == {"version:cancer:1", "version:cancer:2"}
    page = populated.cli("audit", "log", "-n", "2", "--before", "5", "--json").json()
    assert [e["seq"] for e in page] == [4, 3]
    none = populated.cli("audit", "log", "--since", "2999-01-01", "--json").json()
    assert none == []


def test_dataset_profile_and_idempotent_registration(populated: Workspace, tmp_path: Path) -> None:
    ws = populated
    d = ws.cli("dataset", "show", "cancer", "--json").json()
    assert d["row_count"] == 569 and d["columns"][-1] == {"name": "target", "dtype": "int64"}
    size = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli(
        "dataset",
        "register",
        str(tmp_path / "cancer.csv"),
        "--name",
        "cancer",
        "--json",
        as_="alice",
    ).json()
    assert again["created"] is False and again["version"] == 1
    assert len(ws.cli("audit", "log", "-n", "1000", "--json").json()) == size


def test_runs_link_datasets(populated: Workspace) -> None:
    ws = populated
    r = ws.cli(
        "run",
        "record",
        "--params",
        '{"C": 1}',
        "--metrics",
        '{"auc": 0.9}',
        "--seed",
        "7",
        "--dataset",
        "train=cancer:1",
        "--key",
        "run-1",
        "--json",
        as_="alice",
    )
    assert r.code == 0, r.err
    assert r.json()["datasets"][0]["dataset"] == "cancer:1" and r.json()["seed"] == 7


def test_a_checkpoint_out_that_is_no_regular_file_is_written_to_not_replaced(
    ws: Workspace, tmp_path: Path
) -> None:
    """The checkpoint is written to a new file renamed over --out. Over a
    device or a pipe, that put a regular file in its place: run as root,
    `--out /dev/null` replaced /dev/null itself (tested here with a pipe,
    which the old code replaced the same way). A link now stays a link."""
    import os
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()), daemon=True)
    reader.start()
    r = ws.cli("audit", "checkpoint", "--out", str(pipe))
    if r.code != 0:  # let the reader go before failing
        with open(pipe, "wb"):
            pass
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    reader.join(30)
    assert got == [r.out.encode()] and got[0].startswith(ws.ctx().workspace.origin.encode())
    target, link = tmp_path / "target.txt", tmp_path / "link.txt"
    target.write_text("old")
    link.symlink_to(target)
    again = ws.cli("audit", "checkpoint", "--out", str(link))
    assert again.code == 0 and link.is_symlink() and target.read_text() == again.out


def test_inclusion_proof_and_consistency(populated: Workspace, tmp_path: Path) -> None:
    from cmi_console.core import merkle

    ws = populated
    old = tmp_path / "old.checkpoint"
    assert ws.cli("audit", "checkpoint", "--out", str(old)).code == 0
    assert ws.cli("model", "create", "other", as_="alice").code == 0
    proof = ws.cli("audit", "prove", "3").json()
    assert merkle.verify_inclusion(
        3,
        proof["tree_size"],
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(proof["root"]),
    )
    assert merkle.leaf_hash(proof["entry"].encode()).hex() == proof["leaf_hash"]
    cons = ws.cli("audit", "consistency", str(old)).json()
    assert cons["consistent"] and cons["new_size"] == cons["old_size"] + 1
    assert merkle.verify_consistency(
        cons["old_size"],
        cons["new_size"],
        bytes.fromhex(cons["old_root"]),
        bytes.fromhex(cons["new_root"]),
        [bytes.fromhex(p) for p in cons["proof"]],
    )


def test_consistency_refuses_a_checkpoint_from_another_history(
    populated: Workspace, tmp_path: Path
) -> None:
    from cmi_console.core import checkpoint

    ws = populated
    note = ws.cli("audit", "checkpoint").out
    cp, _ = checkpoint.parse(note)
    key = ws.ctx().log_key()
    forged = checkpoint.sign(
        checkpoint.Checkpoint(cp.origin, cp.size, b"\x07" * 32), cp.origin, key
    )
    path = tmp_path / "forged.checkpoint"
    path.write_text(forged)
    r = ws.cli("audit", "consistency", str(path))
    assert r.code == 4 and "does not extend" in r.err


def test_key_files_are_private(populated: Workspace) -> None:
    for key in (populated.home / "keys").glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_witness_is_written_outside_the_database(populated: Workspace) -> None:
    slots = sorted((populated.home / "witness").glob("checkpoint.*"))
    assert [s.name for s in slots] == ["checkpoint.0", "checkpoint.1"]
    sizes = sorted(int(s.read_text().split("\n")[1]) for s in slots)
    n = len(populated.cli("audit", "log", "-n", "1000", "--json").json())
    assert sizes == [n - 1, n]  # the newest and the one before, by turns


def test_a_removed_witness_directory_is_made_again(populated: Workspace) -> None:
    import shutil

    shutil.rmtree(populated.home / "witness")
    assert populated.cli("model", "create", "again", as_="alice").code == 0
    slots = list((populated.home / "witness").glob("checkpoint.*"))
    n = len(populated.cli("audit", "log", "-n", "1000", "--json").json())
    assert [int(s.read_text().split("\n")[1]) for s in slots] == [n]


def test_json_output_is_valid_for_read_commands(populated: Workspace) -> None:
    for args in (
        ["user", "list"],
        ["model", "show", "cancer"],
        ["dataset", "list"],
        ["version", "list", "cancer"],
        ["audit", "show", "0"],
        ["role", "list"],
    ):
        r = populated.cli(*args, "--json")
        assert r.code == 0, (args, r.err)
        json.loads(r.out)


def test_version_is_the_installed_distributions(ws: Workspace) -> None:
    from importlib.metadata import version

    r = ws.cli("--version", as_=None)
    assert r.code == 0 and r.out == f"cmi-console {version('cmi-console')}\n", r


def test_progress_bars_stay_off_stdout(
    populated: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # piped (as in CI): no bar at all, stdout holds the result alone
    r = populated.cli("audit", "verify")
    assert r.code == 0 and r.out.startswith("ok: ") and r.out.count("\n") == 1, r
    assert r.err == ""
    # on a terminal the bar draws on stderr while the suite runs, and is gone after
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: treat stderr as a terminal
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    r = populated.cli("validate", "cancer:1", "--suite", "staging", as_="alice")
    assert r.code == 0 and "checked " in r.err and "checked " not in r.out, r
    assert "validation run #1 of cancer:1" in r.out, r.out


def test_an_alias_differing_from_another_only_by_case_is_refused(populated: Workspace) -> None:
    """cancer@Champion beside cancer@champion named two versions a deployment
    could mix up; a miss by case is answered with the alias meant."""
    assert populated.cli("alias", "set", "cancer", "champion", "1", as_="alice").code == 0
    head = populated.cli("audit", "log", "-n", "1", "--json").json()[0]["seq"]
    for args, words in (
        (
            ("alias", "set", "cancer", "Champion", "2"),
            "alias 'Champion': differs from cancer's alias 'champion' only by case",
        ),
        (("version", "show", "cancer@Champion"), "no alias 'Champion'; did you mean 'champion'?"),
        (("alias", "delete", "cancer", "CHAMPION"), "no alias 'CHAMPION'; did you mean"),
    ):
        r = populated.cli(*args, as_="alice")
        assert r.code == 2 and words in r.err and len(r.err.splitlines()) == 1, r.err
    assert populated.cli("audit", "log", "-n", "1", "--json").json()[0]["seq"] == head


def test_an_empty_artifact_is_refused_and_leaves_nothing_in_the_store(
    populated: Workspace, tmp_path: Path
) -> None:
    """A failed export (`model.skops` created, nothing written into it) was
    registered as a version of 0 bytes."""
    empty = tmp_path / "model.skops"
    empty.write_bytes(b"")
    store = sorted(p.name for p in (populated.home / "artifacts").rglob("*") if p.is_file())
    r = populated.cli("version", "register", "cancer", "--artifact", str(empty), as_="alice")
    assert r.code == 2 and r.err.strip() == (
        f"cmi: --artifact: {empty}: empty (0 bytes); it holds no model"
    )
    assert sorted(p.name for p in (populated.home / "artifacts").rglob("*") if p.is_file()) == store
    listed = populated.cli("version", "list", "cancer", "--json").json()
    assert sorted(v["version"] for v in listed) == [1, 2]


def test_a_run_recorded_again_under_its_key_is_answered_with_it(populated: Workspace) -> None:
    """A CI job that records its run under the pipeline's id and is retried
    after a timeout that came after the commit failed on "already exists"
    (exit 2). The same run again is answered with it and nothing is written;
    the key with anything else recorded is refused, naming the option."""
    ws = populated
    run = [
        "run",
        "record",
        "--key",
        "pipeline-81",
        "--params",
        '{"C": 0.5, "solver": {"name": "lbfgs"}}',
        "--metrics",
        '{"auc": 0.91}',
        "--code",
        '{"commit": "4f1c2e9"}',
        "--environment",
        '{"python": "3.11.7"}',
        "--seed",
        "7",
        "--dataset",
        "train=cancer:1",
        "--json",
    ]
    first = ws.cli(*run, as_="alice")
    assert first.code == 0 and first.json()["created"] is True
    entries = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli(*run, as_="alice")
    assert again.code == 0, again.err
    assert again.err.strip().startswith("note: run 'pipeline-81' was recorded already (")
    assert again.err.strip().endswith("nothing written")
    view = again.json()
    assert view["created"] is False
    assert {k: v for k, v in view.items() if k != "created"} == {
        k: v for k, v in first.json().items() if k != "created"
    }
    for option, value in (
        ("--params", '{"C": 0.6, "solver": {"name": "lbfgs"}}'),
        ("--metrics", '{"auc": 0.9100000000000001}'),
        ("--code", '{"commit": "4f1c2e8"}'),
        ("--environment", "{}"),
        ("--seed", "8"),
        ("--dataset", "holdout=cancer:1"),
    ):
        i = run.index(option)
        changed = [*run[: i + 1], value, *run[i + 2 :]]
        r = ws.cli(*changed, as_="alice")
        assert r.code == 2, (option, r.err)
        assert r.err.strip() == (
            f"cmi: --key: run 'pipeline-81' was recorded with another {option}; "
            "a retry gives what it recorded, a new run a new key"
        )
    i = run.index("--seed")
    r = ws.cli(*run[:i], *run[i + 2 :], as_="alice")  # no seed, where 7 was recorded
    assert r.code == 2 and "another --seed" in r.err
    assert len(ws.cli("audit", "log", "-n", "1000", "--json").json()) == entries
    assert ws.cli("audit", "verify").code == 0


def test_a_version_registered_again_from_its_run_is_answered_with_it(
    populated: Workspace, tmp_path: Path
) -> None:
    """The step after `run record` in a CI job: its retry registered the same
    artifact from the same run as another version, which reviewers then saw
    twice. The same registration from the same run is answered with its
    version; anything different (a tag, another artifact) is a new version,
    and so is a registration without a run, which has nothing to match."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.tree import DecisionTreeClassifier

    from cmi_console.store.model_files import dumps

    ws = populated
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    art = tmp_path / "tree.skops"
    art.write_bytes(dumps(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)))
    assert (
        ws.cli("run", "record", "--key", "job-5", "--metrics", '{"auc": 0.95}', as_="alice").code
        == 0
    )
    register = ["version", "register", "cancer", "--artifact", str(art), "--run", "job-5"]
    register += ["--dataset", "train=cancer:1", "--metrics", '{"auc": 0.95}']
    register += ["--tag", "commit=4f1c2e9", "--description", "depth 3", "--json"]
    first = ws.cli(*register, as_="alice")
    assert first.code == 0 and first.json()["version"] == 3 and first.json()["created"] is True
    entries = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli(*register, as_="alice")
    assert again.code == 0, again.err
    assert again.json()["version"] == 3 and again.json()["created"] is False
    assert again.err.strip().startswith("note: run 'job-5' registered this as cancer:3 already (")
    assert len(ws.cli("audit", "log", "-n", "1000", "--json").json()) == entries
    assert [v["version"] for v in ws.cli("version", "list", "cancer", "--json").json()] == [3, 2, 1]

    i = register.index("commit=4f1c2e9")
    other_tag = ws.cli(*register[:i], "commit=77aa001", *register[i + 1 :], as_="alice")
    assert other_tag.json()["version"] == 4 and other_tag.json()["created"] is True
    j = register.index("--run")
    no_run = ws.cli(*register[:j], *register[j + 2 :], as_="alice")
    assert no_run.json()["version"] == 5 and no_run.json()["created"] is True
    assert ws.cli("audit", "verify").code == 0


def test_a_model_created_again_by_its_creator_is_answered_with_it(populated: Workspace) -> None:
    """A set-up step (`cmi model create` in a CI job or a script run twice)
    failed on "already exists" the second time, so scripts added `|| true`
    and hid every other failure with it. The same model again by its creator
    is answered with it; anything else is refused and says what differs."""
    ws = populated
    create = ["model", "create", "fraud", "--description", "card fraud", "--json"]
    first = ws.cli(*create, as_="alice")
    assert first.code == 0 and first.json()["created"] is True
    entries = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli(*create, as_="alice")
    assert again.code == 0 and again.json() == {**first.json(), "created": False}
    assert again.err.strip().startswith("note: model 'fraud' was created already (")
    for args, as_, why in (
        (create, "root", "created by alice, owner alice"),
        (
            ["model", "create", "fraud", "--description", "fraud"],
            "alice",
            "created by alice, another description",
        ),
        ([*create[:-1], "--owner", "bob"], "alice", "created by alice, owner alice"),
    ):
        r = ws.cli(*args, as_=as_)
        assert r.code == 2 and r.err.strip() == f"cmi: model 'fraud' already exists ({why})", r.err
    assert len(ws.cli("audit", "log", "-n", "1000", "--json").json()) == entries
