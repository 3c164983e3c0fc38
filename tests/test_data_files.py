"""Data files are read one way: a file named on the line, or bytes kept in the
artifact store; repeated column names are refused in both."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import Workspace

from cmi_console.core.errors import BadInput
from cmi_console.store import data_files


@pytest.mark.parametrize(
    "text, columns",
    [
        ("a,b\n1,2\n", ["a", "b"]),
        # a real column may be called 'a.1'; only a repeated name is refused
        ("a,a.1\n1,2\n", ["a", "a.1"]),
        # pandas skips blank lines before the header, and so does the check
        ("\n\na,b\n1,2\n", ["a", "b"]),
        ("\ufeffa,b\n1,2\n", ["a", "b"]),
        ('"a,b",c\n1,2\n', ["a,b", "c"]),
        # unnamed columns are named by their place, so not ambiguous
        (",,a\n1,2,3\n", ["Unnamed: 0", "Unnamed: 1", "a"]),
    ],
)
def test_csv_read_from_a_path_and_from_bytes_alike(
    tmp_path: Path, text: str, columns: list[str]
) -> None:
    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    assert list(data_files.load(path).frame.columns) == columns
    assert list(data_files.read(path.read_bytes(), "csv", "stored").columns) == columns


@pytest.mark.parametrize("text", ["a,b\n1,2,3\n4,5\n", "a,b\n1,2\n3,4,5\n"])
def test_a_row_longer_than_the_header_is_refused(tmp_path: Path, text: str) -> None:
    """pandas took a long first row's first field as the row index and
    shifted the rest: a=2, b=3 for the row 1,2,3. Refused wherever it is."""
    path = tmp_path / "ragged.csv"
    path.write_text(text, encoding="utf-8")
    for read in (
        lambda: data_files.load(path).frame,
        lambda: data_files.read(path.read_bytes(), "csv", "stored"),
    ):
        with pytest.raises(BadInput, match="cannot read as csv: .*(first row has 3 fields|saw 3)"):
            read()
    # a short row is missing values, as CSV readers take it
    path.write_text("a,b\n1\n2,3\n", encoding="utf-8")
    assert data_files.load(path).frame["a"].tolist() == [1, 2]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_file_separated_otherwise_is_refused_not_read_as_one_column(
    tmp_path: Path, sep: str
) -> None:
    """A spreadsheet's CSV export in a locale whose decimal mark is a comma
    is separated by ';': it was read (and registered) as one column named
    'age;income'. A file of one column still reads."""
    path = tmp_path / "eu.csv"
    for row in (f"41{sep}2", f"41{sep}2,5"):  # with a decimal comma, the row is ragged
        path.write_text(f"age{sep}income\n{row}\n", encoding="utf-8")
        for read in (
            lambda: data_files.load(path).frame,
            lambda: data_files.read(path.read_bytes(), "csv", "stored"),
        ):
            with pytest.raises(BadInput, match=re.escape(f"one column holding {sep!r}")):
                read()
    path.write_text("age\n41\n", encoding="utf-8")
    assert data_files.load(path).frame["age"].tolist() == [41]


@pytest.mark.parametrize(
    "text, name",
    [
        ("a,b,a\n1,2,3\n", "a"),
        ("\n\nx,y,y\n1,2,3\n", "y"),
        ('"a,b",c,"a,b"\n1,2,3\n', "a,b"),
    ],
)
def test_a_repeated_csv_column_is_refused(tmp_path: Path, text: str, name: str) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match=f"^{path}: column '{name}' appears more than once$"):
        data_files.load(path)
    with pytest.raises(BadInput, match=f"^stored: column '{name}' appears more than once$"):
        data_files.read(path.read_bytes(), "csv", "stored")


def test_parquet_reads_and_a_repeated_column_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(good)
    assert list(data_files.load(good).frame.columns) == ["a", "b"]
    dup = tmp_path / "dup.pq"
    pq.write_table(pa.table([[1], [2]], names=["a", "a"]), dup)
    with pytest.raises(BadInput, match=f"^{dup}: "):
        data_files.load(dup)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("d.txt", b"a,b\n1,2\n", "unsupported data format"),
        ("d.csv", b"", "cannot read as csv"),
        ("d.parquet", b"a,b\n1,2\n", "cannot read as parquet"),
        # csv's field limit: a line, not a traceback
        ("d.csv", b"x" * 200_000 + b",b\n1,2\n", "header: field larger than field limit"),
    ],
)
def test_unreadable_files_are_bad_input(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput, match=words):
        data_files.load(path)


def test_a_parquet_file_that_unpacks_past_the_memory_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ws: Workspace
) -> None:
    """46 KB of run-length encoded zeros are ten million cells: a few
    megabytes of such a file unpack to billions, and the reader was killed
    for memory. The footer says how many cells there are before any is
    read; here the limit is lowered so that a small real file stands in."""
    import numpy as np
    from gate_helpers import log_head

    bomb = tmp_path / "bomb.parquet"
    zeros = np.zeros(5_000_000, dtype="int64")
    pq.write_table(pa.table({"a": zeros, "b": zeros}), bomb, compression="zstd")
    assert bomb.stat().st_size < 100_000
    assert len(data_files.load(bomb).frame) == 5_000_000  # under the real limit it reads
    monkeypatch.setattr(data_files, "MAX_IN_MEMORY", 64 << 20)
    words = f"{bomb}: 5,000,000 rows of 2 columns would take more than 0.0625 GiB in memory"
    for source in (bomb, bomb.read_bytes()):
        with pytest.raises(BadInput, match=f"^{words}; split the file$"):
            if isinstance(source, bytes):
                data_files.read(source, "parquet", str(bomb))
            else:
                data_files.load(source)
    head = log_head(ws)
    r = ws.cli("dataset", "register", str(bomb), "--name", "bomb")
    assert r.code == 2 and r.err.strip() == f"cmi: {words}; split the file", r.err
    assert log_head(ws) == head


def test_category_codes_read_as_floats_are_the_codes_the_model_knew() -> None:
    """A column of category codes the model took as text ("7", "12") comes
    back as numbers from a file of digits only, and as floats when one cell
    is empty: "7.0" was a category the model had never seen (scored as
    unknown, and counted as drift)."""
    import numpy as np

    from cmi_console.validation.conformance import check_features

    reference = pd.DataFrame({"branch": ["7", "12", "A9"], "x": [1, 2, 3]})
    frame = pd.DataFrame({"branch": [7.0, np.nan, 12.0], "x": [1, 2, 3]})
    got = check_features(frame, ["branch", "x"], reference, "window.csv")["branch"]
    assert got.tolist()[0::2] == ["7", "12"] and got.isna().tolist() == [False, True, False]
    whole = check_features(frame.dropna().astype({"branch": int}), ["branch"], reference, "w.csv")
    assert whole["branch"].tolist() == ["7", "12"]


def test_a_file_opened_outside_its_root_is_refused(tmp_path: Path) -> None:
    """A recipe's data path is checked to stay inside its repository, then
    opened: a directory on the way swapped for a link in between (another
    process on a CI runner) sent the open outside, and the file read there
    was registered as a dataset. The open itself is checked: where the file
    it opened lies (/proc/self/fd), not only where the name led before."""
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "credit.csv").write_text("secret,x\n1,2\n")
    (root / "data" / "credit.csv").write_text("a,b\n1,2\n")
    assert data_files.load(root / "data" / "credit.csv", "data.file", within=root).frame.shape
    # the state the swap leaves: the checked path now leads outside
    (root / "data" / "credit.csv").unlink()
    (root / "data").rmdir()
    (root / "data").symlink_to(outside)
    with pytest.raises(BadInput, match="leads outside .*repo"):
        data_files.load(root / "data" / "credit.csv", "data.file", within=root)


def test_a_classifiers_classes_are_in_the_order_its_probabilities_have() -> None:
    """Classes were sorted as text: of 2 and 10 the "positive" one was 2,
    while the model's probability column (the window's `score`, ROC AUC)
    is for 10, so a window's positive rate and its fairness counted the
    other class. They are in scikit-learn's order, as its `classes_`."""
    from sklearn.linear_model import LogisticRegression

    from cmi_console.validation.conformance import known_classes

    labels = pd.Series([10, 2, 10, 2, None, 2])
    X = pd.DataFrame({"x": [5.0, 1.0, 6.0, 0.0, 3.0, 1.5]})
    model = LogisticRegression().fit(X[labels.notna()], labels.dropna().astype(int))
    assert known_classes(labels) == list(model.classes_) == [2, 10]
    assert known_classes(pd.Series(["yes", "no", "no"])) == ["no", "yes"]
    assert known_classes(pd.Series([1, "a", 1])) == [1, "a"]  # no order but as text
