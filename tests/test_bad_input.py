"""Bad input: one clear line, exit 2, nothing written, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, Workspace
from silent_server import silent_server

BIG = "9" * 23  # beyond 2**63 - 1
DEEP_JSON = "[" * 5000 + "]" * 5000
LONG = "x" * 2001
NO_PATH = "/tmp/" + "n" * 300  # longer than a file name may be (ENAMETOOLONG)
SIGNED_LINK = "https://acct.blob.example/d.csv?sv=2024&sig=Zm9vYmFy"
SCRUBBED = "https://acct.blob.example/d.csv?sv=2024&sig=***"
# the commands that take a comment or a reason, and its option
COMMENTED = (
    (["request", "cancer:1", "--to", "staging"], "--comment"),
    (["approve", "cancer:1", "--to", "staging"], "--comment"),
    (["reject", "cancer:1", "--to", "staging"], "--comment"),
    (["promote", "cancer:1", "--to", "staging"], "--comment"),
    (["withdraw", "1"], "--comment"),
    (["retire", "cancer:1"], "--reason"),
    (["break-glass", "cancer:1", "--to", "staging"], "--reason"),
    (["deploy", "start", "cancer:1", "--env", "staging"], "--comment"),
    (["rollback", "cancer", "--env", "staging"], "--reason"),
    (["monitor", "close-alert", "1"], "--comment"),
    (["model", "tier", "cancer", "low"], "--reason"),
    (["user", "disable", "alice"], "--reason"),
)


def log_size(ws: Workspace) -> int:
    return len(ws.cli("audit", "log", "-n", "10000", "--json").json())


@pytest.mark.parametrize(
    "args, words",
    [
        (["model", "create", "../etc"], "not a valid name"),
        # its creator creating it again is answered with it; anything else is not
        (
            ["model", "create", "cancer", "--description", "other"],
            "model 'cancer' already exists (created by alice, another description)",
        ),
        # read for one another, and a policy for `cancer` would not govern `Cancer`
        (
            ["model", "create", "Cancer"],
            "model 'Cancer': differs from the model 'cancer' only by case",
        ),
        (["model", "show", "CANCER"], "model 'CANCER' does not exist; did you mean 'cancer'?"),
        (["version", "register", "nope", "--artifact", "{art}"], "model 'nope' does not exist"),
        (["version", "register", "cancer", "--artifact", "/no/such/file"], "no such file"),
        (["version", "register", "cancer", "--artifact", "{folder}"], "not a regular file"),
        # a failed export: registered as a version of 0 bytes
        (
            ["version", "register", "cancer", "--artifact", "{folder}/empty.skops"],
            "empty.skops: empty (0 bytes); it holds no model",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--metrics", "{{bad"],
            "--metrics:1:2: invalid JSON",
        ),
        (
            [
                "version",
                "register",
                "cancer",
                "--artifact",
                "{art}",
                "--metrics",
                '{{"auc": "high"}}',
            ],
            "--metrics.auc: must be a number",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--tag", "novalue"],
            "is not KEY=VALUE",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--dataset", "ghost"],
            "dataset 'ghost' does not exist",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--dataset", "CANCER:1"],
            "dataset 'CANCER:1' does not exist; did you mean 'cancer:1'?",
        ),
        # read for one another in the lineage, as models are
        (
            ["dataset", "register", "{folder}/ok.csv", "--name", "Cancer"],
            "dataset 'Cancer': differs from the dataset 'cancer' only by case",
        ),
        (["version", "show", "cancer:zero"], "version must be a positive integer"),
        # the second delete of one tag had been recorded in the log: verify
        # then reported the log and the tables at odds
        (["version", "tag", "cancer:1", "--remove", "c", "--remove", "c"], "'c' given twice"),
        (["version", "tag", "cancer:1", "--tag", "c=2", "--remove", "c"], "also set by --tag"),
        (["version", "tag", "cancer:1", "--tag", "k=1", "--tag", "k=2"], "--tag: 'k' given twice"),
        (["version", "search", "--tag", "k=1", "--tag", "k=2"], "--tag: 'k' given twice"),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--dataset", "cancer"]
            + ["--dataset", "train=cancer:1"],
            "--dataset: 'train' given twice",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--dataset", "a b=cancer"],
            "--dataset: 'a b' is not a valid key",
        ),
        (["version", "search", "--metric", "auc~1"], "is not KEY>=NUMBER"),
        (["dataset", "register", "{bad_csv}", "--name", "x"], "cannot read as csv"),
        (["dataset", "register", "{art}", "--name", "x"], "unsupported data format"),
        # pandas renamed the second 'a' to 'a.1': the schema named a column
        # the file does not have
        (["dataset", "register", "{dup_csv}", "--name", "x"], "column 'a' appears more than once"),
        (["audit", "log", "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time"),
        (["audit", "log", "-n", "0"], "--limit"),
        # the other way round, the query quietly found nothing
        (
            ["audit", "log", "--since", "2026-11-20", "--until", "2026-11-10"],
            "--until: 2026-11-10T00:00:00.000000Z is not after --since",
        ),
        (["audit", "prove", "999"], "not in the signed log"),
        # read as a rollout of a model "status": "deploy start: Missing option '--env'"
        (["deploy", "status"], "cmi: deploy: no command 'status' (commands: start, advance"),
        # found only after the run (or the checkpoint) had been recorded
        (
            ["validate", "cancer:1", "--junit", "{folder}/no/j.xml"],
            "--junit: {folder}/no/j.xml: no such directory",
        ),
        (
            ["validate", "cancer:1", "--markdown", "{folder}"],
            "--markdown: {folder}: is a directory",
        ),
        (["audit", "checkpoint", "--out", "{folder}"], "--out: {folder}: is a directory"),
        (["audit", "consistency", "{bad_note}"], "no blank line"),
        # read until memory ran out (a device), or blocked (a FIFO)
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--metrics", "@/dev/zero"],
            "--metrics: /dev/zero: not a regular file",
        ),
        (["audit", "consistency", "/dev/zero"], "CHECKPOINT_FILE: /dev/zero: not a regular file"),
        (["role", "grant", "alice", "risk-oficer"], "unknown role 'risk-oficer'"),
        # numbers canonical JSON cannot record: internal errors at the write
        (["run", "record", "--params", '{{"a": NaN}}'], "--params: a: nan is not a finite number"),
        (
            ["run", "record", "--params", '{{"a": {{"b": [1, 1e400]}}}}'],
            "a.b[1]: inf is not a finite number",
        ),
        (["run", "record", "--code", '{{"n": 9007199254740993}}'], "n: 9007199254740993 is beyond"),
        # a CI's repository URL carries its token: the log would keep it for good
        (
            ["run", "record", "--code", '{{"repo": "https://gitlab-ci-token:glcbt-64@x.io/r"}}'],
            "--code: repo: holds a credential (https://***@x.io/r)",
        ),
        (
            ["run", "record", "--params", '{{"src": ["s3://b/f?X-Amz-Signature=abc"]}}'],
            "--params: src[0]: holds a credential (s3://b/f?X-Amz-Signature=***)",
        ),
        # a name given twice: Python kept the last value, silently dropping one
        (
            ["run", "record", "--params", '{{"lr": 0.1, "x": {{"lr": 1, "lr": 2}}}}'],
            "--params: invalid JSON: the name 'lr' appears twice in one object",
        ),
        (["run", "record", "--seed", str(2**63 - 1)], "--seed: must be 0..4294967295"),
        # an unset CI variable: a generated key made each retry another run
        (["run", "record", "--key", ""], "--key: '' is not a valid key"),
        # a seed numpy and scikit-learn refuse failed inside a check, or passed unused
        (["validate", "cancer:1", "--seed", "-1"], "--seed: must be 0..4294967295, not -1"),
        (["incident", "timeline", "1", "--hours-before", "nan"], "--hours-before: must be"),
        (["incident", "timeline", "1", "--hours-before", "-5"], "--hours-before: must be"),
        # a comment or reason kept only in an entry or a signed statement had no
        # limit (100 KB were logged); the documented 2,000 applies to all of them
        *(
            (args + [flag, LONG], f"{flag}: at most 2000 characters (2001 given)")
            for args, flag in COMMENTED
        ),
        # a URL's credential in free text (a signed link pasted into a comment)
        # went into the log, which keeps it for good
        *(
            (args + [flag, f"see {SIGNED_LINK} ok"], f"{flag}: holds a credential ({SCRUBBED})")
            for args, flag in COMMENTED
        ),
        (
            ["model", "create", "new", "--description", f"data at {SIGNED_LINK}"],
            f"models.description: holds a credential ({SCRUBBED})",
        ),
        (
            [
                "version",
                "register",
                "cancer",
                "--artifact",
                "{art}",
                "--tag",
                "data=" + SIGNED_LINK,
            ],
            f"version_tags.value: holds a credential ({SCRUBBED})",
        ),
        (
            ["version", "tag", "cancer:1", "--tag", "repo=https://ghp_x1y2z3@github.com/o/r.git"],
            "version_tags.value: holds a credential (https://***@github.com/o/r.git)",
        ),
        (
            ["model", "consumers", "add", "cancer", "feed", "--contact", SIGNED_LINK],
            f"model_consumers.contact: holds a credential ({SCRUBBED})",
        ),
        (
            ["incident", "open", "cancer", "--title", f"leak: {SIGNED_LINK}"],
            f"incidents.title: holds a credential ({SCRUBBED})",
        ),
        # found after the evaluation (triggers, alerts, requests) had been written
        (
            ["monitor", "evaluate", "cancer", "--env", "production", "--retrain", "{art}"],
            "unsupported data format",
        ),
        # pathlib's is_file() raises on a name too long: an internal error
        # wherever a path was named
        *(
            (args, "File name too long")
            for args in (
                ["version", "register", "cancer", "--artifact", NO_PATH],
                ["audit", "export", "--out", NO_PATH],
                ["audit", "checkpoint", "--out", NO_PATH],
                ["audit", "consistency", NO_PATH],
                ["policy", "check", NO_PATH],
                ["validate", "cancer:1", "--data", NO_PATH],
                ["validate", "cancer:1", "--junit", NO_PATH],
                ["--home", NO_PATH, "audit", "log"],
                ["init", "--home", NO_PATH],
            )
        ),
        # an empty filter (an unset variable on the line) listed every entry
        (["audit", "log", "--actor", ""], "--actor: empty; leave the option out"),
        (["audit", "log", "--subject", ""], "--subject: empty; leave the option out"),
        (["audit", "log", "--since", ""], "--since: '' is not an ISO 8601 time"),
        (["audit", "export", "--out", "{folder}/b.zip", "--until", ""], "--until: '' is not"),
        # it quietly listed nothing
        (["incident", "list", "--status", "shut"], "--status: 'shut' is not one of open, closed"),
        # --segments are read as every KEY=VALUE option is (a value was unbounded)
        *(
            (["deploy", "start", "cancer:1", "--env", "staging", "--strategy", "ab"] + seg, words)
            for seg, words in (
                (["--segments", "k=" + "v" * 501], "--segments: k: at most 500 characters"),
                (["--segments", "k=1", "--segments", "k=2"], "--segments: 'k' given twice"),
                (["--segments", "k="], "--segments: 'k=' has no value"),
                (["--segments", "=v"], "--segments: '' is not a valid key"),
            )
        ),
        # PostgreSQL refuses a negative OFFSET (an internal error); SQLite ignored it
        (["version", "list", "cancer", "--offset", "-1"], "--offset: must not be negative"),
        # nesting deeper than the parsers' recursion: internal errors before
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--metrics", DEEP_JSON],
            "--metrics: invalid JSON: nested too deeply",
        ),
        (["policy", "check", "{deep_toml}"], "invalid TOML: nested too deeply"),
        # TOML's nan and inf: an internal error (no JSON form), and a threshold
        # of nan compares false both ways
        (["policy", "check", "{nan_toml}"], "checks[0].min.roc_auc: nan is not a finite number"),
        # TOML's integers have no bound: one beyond 2**53 was an internal error
        (
            ["policy", "check", "{big_toml}"],
            "roc_auc: " + "1" + "0" * 30 + " is beyond the integers",
        ),
        (["policy", "check", "/dev/zero"], "/dev/zero: not a regular file"),
        # libpq takes a password in the query: it was printed as given
        (
            ["--db", "mysql://u@h/db?password=hunter2", "audit", "log"],
            "unsupported scheme in 'mysql://u@h/db?password=***'",
        ),
        # a header alone: every other command that reads data refused it
        (["dataset", "register", "{folder}/header.csv", "--name", "h"], "header.csv: no rows"),
        # longer than the column: PostgreSQL refused it as an internal error,
        # SQLite stored it
        (
            ["model", "create", "long", "--description", "x" * 2001],
            "models.description: at most 2000 characters (2001 given)",
        ),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--tag", "k=" + "v" * 501],
            "version_tags.value: at most 500 characters (501 given)",
        ),
        (["user", "add", "Bad Name", "--role", "developer"], "not a valid principal name"),
        # "$" matched before a final newline: these were taken as names
        (["model", "create", "evil\n"], "model: 'evil\\n' is not a valid name"),
        (["user", "add", "mallory\n", "--role", "developer"], "not a valid principal name"),
        (["alias", "set", "cancer", "champion\n", "1"], "is not a valid name"),
        # an escape sequence in input is shown, never sent to the terminal
        (["model", "create", "x\x1b[2J"], "'x\\x1b[2J' is not a valid name"),
        # numbers beyond the databases' 64-bit integers were internal errors
        (["audit", "show", BIG], f"Invalid value for 'seq': {BIG} is too large"),
        (["alias", "set", "cancer", "champion", BIG], "is too large"),
        (["incident", "show", BIG], "is too large"),
        (["validation", "show", BIG], "is too large"),
        (["audit", "log", "--before", BIG], "'--before': " + BIG + " is too large"),
        (["version", "show", "cancer:" + BIG], "version number is too large"),
        # digits str.isdigit() takes: int() refused "²" and read "١" as 1
        (["version", "show", "cancer:\u00b2"], "version must be a positive integer"),
        (["version", "show", "cancer:\u0661"], "version must be a positive integer"),
        (
            ["version", "register", "cancer", "--artifact", "{art}", "--dataset", "x:\u00b2"],
            "version must be a positive integer",
        ),
    ],
)
def test_one_line_exit_2_nothing_written(
    populated: Workspace, tmp_path: Path, args: list[str], words: str
) -> None:
    art = tmp_path / "m1.skops"
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_bytes(b'a,b\n1,"unterminated\n')
    dup_csv = tmp_path / "dup.csv"
    dup_csv.write_bytes(b"a,b,a\n1,2,3\n")
    (tmp_path / "header.csv").write_bytes(b"a,b\n")
    (tmp_path / "ok.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "empty.skops").write_bytes(b"")
    bad_note = tmp_path / "note"
    bad_note.write_text("not a checkpoint")
    deep_toml = tmp_path / "deep.toml"
    deep_toml.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    nan_toml = tmp_path / "nan.toml"
    nan_toml.write_text(
        'format = 1\nmodel = "cancer"\n[suites.x]\n[[suites.x.checks]]\n'
        'kind = "performance"\nmin = { roc_auc = nan }\n'
    )
    big_toml = tmp_path / "big.toml"
    big_toml.write_text(nan_toml.read_text().replace("nan", "1" + "0" * 30))
    args = [
        a.format(
            big_toml=big_toml,
            art=art,
            bad_csv=bad_csv,
            dup_csv=dup_csv,
            bad_note=bad_note,
            folder=tmp_path,
            deep_toml=deep_toml,
            nan_toml=nan_toml,
        )
        for a in args
    ]
    before = log_size(populated)
    store = sorted(p.name for p in (populated.home / "artifacts").rglob("*") if p.is_file())
    actor = "root" if args[0] in {"role", "user"} else "alice"
    r = populated.cli(*args, as_=actor)
    assert r.code == 2, (r.code, r.err)
    assert words.replace("{folder}", str(tmp_path)) in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert log_size(populated) == before
    if "--artifact" not in args:
        assert (
            sorted(p.name for p in (populated.home / "artifacts").rglob("*") if p.is_file())
            == store
        )


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["version", "register"],
            "cmi: version register: Missing argument 'model' (see 'cmi version register --help')",
        ),
        (
            ["audit", "log", "-n", "abc"],
            "cmi: audit log: Invalid value for '-n' / '--limit': 'abc' is not a valid int "
            "(see 'cmi audit log --help')",
        ),
        (["audit", "proof", "1"], "cmi: audit: No such command 'proof'. Did you mean 'prove'?"),
        (["--bogus"], "cmi: No such option: --bogus (see 'cmi --help')"),
        (
            ["version", "register", "x", "--artifact"],
            "cmi: Option '--artifact' requires an argument",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(ws: Workspace, args: list[str], line: str) -> None:
    r = ws.cli(*args)
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith(line), r.err


def test_a_group_without_a_command_shows_its_help(ws: Workspace) -> None:
    r = ws.cli("audit")
    assert r.code == 2 and "verify-bundle" in r.err + r.out


def test_the_console_without_a_terminal_is_one_line_not_a_hang(ws: Workspace) -> None:
    """`cmi` alone in a CI job (stdout a pipe, stdin not a terminal) drew the
    console into the log and waited for keys until the job's time-out."""
    import os
    import subprocess
    import sys

    line = (
        "cmi: the console needs a terminal, and stdin is not one; "
        "in a script use the commands (`cmi --help`)"
    )
    for args in ([], ["tui"]):
        r = ws.cli(*args)
        assert (r.code, r.err.strip(), r.out) == (2, line, ""), r.err
    env = {**os.environ, "CMI_HOME": str(ws.home), "PYTHONPATH": str(REPO)}
    env.pop("CMI_DATABASE_URL", None)
    if ws.db:
        env["CMI_DATABASE_URL"] = ws.db
    done = subprocess.run(
        [sys.executable, "-m", "cmi_console"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stderr.strip(), done.stdout) == (2, line, "")


def test_missing_workspace_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = Workspace(tmp_path / "nothing", None, capsys)
    r = w.cli("audit", "log")
    assert r.code == 2 and "no cmi workspace here" in r.err and len(r.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("[]", "the workspace configuration must be a JSON object"),
        ("{}", "origin: missing"),
        ('{"origin": 5}', "origin: must be a non-empty string"),
        ('{"origin": "o", "database_url": 5}', "database_url: must be a non-empty string"),
        # each working directory had named a witness of its own
        ('{"origin": "o", "witness_dir": "w2"}', "witness_dir: 'w2' is not an absolute path"),
        ('{"origin": "o", "witness_dir": "~/w"}', "witness_dir: '~/w' is not an absolute path"),
    ],
)
def test_a_hand_edited_workspace_file_is_one_line(ws: Workspace, config: str, words: str) -> None:
    """Its keys were read as they came: a list or a number was an internal error."""
    (ws.home / "workspace.json").write_text(config)
    for args in (["audit", "log"], ["demo", "--home", str(ws.home), "--reset", "--no-open"]):
        r = ws.cli(*args)
        assert r.code == 2 and r.err.strip() == f"cmi: {ws.home / 'workspace.json'}: {words}"
    assert (ws.home / "workspace.json").read_text() == config  # --reset deleted nothing


def test_init_refuses_an_existing_workspace_and_changes_nothing(ws: Workspace) -> None:
    before = {p: p.stat().st_mtime_ns for p in ws.home.rglob("*") if p.is_file()}
    r = ws.cli("init", "--admin", "other")
    assert r.code == 2 and "already a cmi workspace" in r.err
    assert {p: p.stat().st_mtime_ns for p in ws.home.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "where, words",
    [
        ("afile", "exists and is not a directory"),
        ("afile/sub", "cannot create (Not a directory)"),  # an internal error before
        ("busy", "directory is not empty"),
    ],
)
def test_init_where_no_workspace_can_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, words: str
) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "kept").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = Workspace(tmp_path / where, None, capsys).cli("init", "--admin", "ada", as_=None)
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_document_named_on_the_line_has_a_size_limit(
    populated: Workspace, tmp_path: Path
) -> None:
    from cmi_console.core.small_files import MAX_DOCUMENT

    big = tmp_path / "metrics.json"
    big.write_bytes(b" " * (MAX_DOCUMENT + 1))
    r = populated.cli("run", "record", "--metrics", f"@{big}", as_="alice")
    assert r.code == 2 and f"--metrics: {big}: larger than 16 MiB" in r.err, r.err


def test_reading_a_small_document_allocates_about_its_size(tmp_path: Path) -> None:
    """read(limit + 1) allocated the whole limit (16 MiB) before reading a
    document of a few bytes: at every command's start, for workspace.json
    (a memory test of the hooks found it). The limit still holds."""
    import tracemalloc

    from cmi_console.core.errors import BadInput
    from cmi_console.core.small_files import MAX_DOCUMENT, read_document

    small = tmp_path / "small.toml"
    small.write_text("a = 1\n")
    tracemalloc.start()
    try:
        assert read_document(small) == "a = 1\n"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_DOCUMENT + 1))
    with pytest.raises(BadInput, match="larger than 16 MiB"):
        read_document(big)


def test_database_password_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cmi_console.services.setup import init_workspace

    init_workspace(tmp_path / "w", admin="root").engine.dispose()
    w = Workspace(tmp_path / "w", "postgresql+psycopg://u:hunter2@127.0.0.1:1/none", capsys)
    r = w.cli("audit", "log")
    assert r.code == 75 and "hunter2" not in r.err + r.out  # nobody answers there: try again
    assert r.err.startswith("cmi: database: cannot reach it (") and len(r.err.splitlines()) == 1


def test_a_server_that_accepts_and_never_answers_is_exit_75(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq waits for ever by default: a PostgreSQL host that took the
    connection and then said nothing (hung, or behind a firewall that drops
    its packets) held every command, and a CI job, until it was killed."""
    from cmi_console.services.setup import init_workspace
    from cmi_console.store import engine

    pytest.importorskip("psycopg", reason="the PostgreSQL driver is the postgres extra")
    url = "postgresql+psycopg://u@127.0.0.1:1/x"
    assert engine.with_connect_timeout(url).query["connect_timeout"] == "10"
    assert engine.with_connect_timeout(url + "?connect_timeout=3").query["connect_timeout"] == "3"
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", 2)  # the default (10 s), shorter
    init_workspace(tmp_path / "w", admin="root").engine.dispose()
    with silent_server() as port:
        w = Workspace(tmp_path / "w", f"postgresql+psycopg://u@127.0.0.1:{port}/x", capsys)
        r = w.cli("audit", "log")
    assert r.code == 75 and len(r.err.splitlines()) == 1, r.err
    assert r.err == "cmi: database: cannot reach it (connection timeout expired)\n"


def test_a_file_that_is_no_database_is_one_line(ws: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite database, just some bytes" * 100)
    w = Workspace(ws.home, f"sqlite:///{junk}", ws.capsys)
    r = w.cli("audit", "log")
    assert r.code == 2 and "cannot open (file is not a database)" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("root", "words"),
    [
        ("relative-store", "CMI_ARTIFACT_ROOT: 'relative-store' is not an absolute path"),
        ("{file}", "CMI_ARTIFACT_ROOT: {file}: not a directory"),
        ("/proc/1/store", "artifact store /proc/1/store: No such file or directory"),
    ],
)
def test_an_artifact_root_that_cannot_hold_the_store_is_one_line(
    populated: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str, words: str
) -> None:
    """A relative root named another store from each working directory (a
    version registered in one was missing from the next); a file, or a place
    where nothing can be made, was an internal error."""
    file = tmp_path / "a-file"
    file.write_text("x")
    art = tmp_path / "m.bin"
    art.write_bytes(b"model")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CMI_ARTIFACT_ROOT", root.format(file=file))
    before = log_size(populated)
    r = populated.cli("version", "register", "cancer", "--artifact", str(art))
    assert (r.code, r.err.strip()) == (2, "cmi: " + words.format(file=file)), r.err
    assert log_size(populated) == before and not (tmp_path / "relative-store").exists()


def test_text_with_a_nul_character_is_refused_on_both_backends(populated: Workspace) -> None:
    """PostgreSQL cannot store NUL in text (DataError, an internal error);
    SQLite kept it. The command line cannot carry one, but an MLflow store's
    tags and descriptions reach the same columns through the services."""
    from cmi_console.core.errors import BadInput
    from cmi_console.services import registry

    before = log_size(populated)
    with pytest.raises(BadInput, match=r"^models\.description: holds a NUL character$"):
        registry.create_model(populated.ctx("alice"), "nul", description="a\x00b")
    assert log_size(populated) == before
