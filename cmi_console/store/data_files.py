"""Data files (CSV or Parquet) read one way for every command: a file the
user names and a data file kept in the artifact store alike."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmi_console.core.errors import BadInput, first_line
from cmi_console.core.small_files import read_regular, require_file

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# what a Parquet file may take in memory once read, counted as 8 bytes a cell
# (a number; a string takes more): a few megabytes of zeros, run-length
# encoded, unpack to billions of cells, and the reader was killed for memory
MAX_IN_MEMORY = 8 << 30


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path}: unsupported data format (use .csv or .parquet)")
    return fmt


@dataclass(frozen=True)
class DataFile:
    """A data file as one read of it found it: its bytes, their SHA-256 and
    the frame parsed from those same bytes. What a run or a window records
    (the hash, the stored copy) is then exactly what it measured or trained
    on: reading the file again for each had let a file rewritten meanwhile
    be recorded under another file's hash."""

    name: str  # the file's name, as a dataset records it
    where: str  # how an error names it: the path
    fmt: str
    blob: bytes
    sha256: str
    frame: Any

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def load(path: Path, where: str = "", within: Path | None = None) -> DataFile:
    """Read a data file the user names, once; `where` names the option;
    `within`: the directory the file opened must be in (a recipe's root)."""
    require_file(path, where)  # before the format: a missing file is said to be missing
    fmt = format_of(path)
    return of_bytes(read_regular(path, where, within=within), fmt, path.name, str(path))


def of_bytes(blob: bytes, fmt: str, name: str, where: str) -> DataFile:
    """A data file from bytes in hand (a dataset kept in the artifact store)."""
    return DataFile(
        name, where, fmt, blob, hashlib.sha256(blob).hexdigest(), read(blob, fmt, where)
    )


def read(source: bytes, fmt: str, where: str) -> Any:
    """The file's bytes as a DataFrame; BadInput, naming `where`, if they are not one."""
    import pandas as pd

    src = io.BytesIO(source)
    try:
        if fmt == "parquet":
            _check_unpacked(src, where)
        frame = pd.read_parquet(src) if fmt == "parquet" else pd.read_csv(src)
    except BadInput:
        raise
    except Exception as exc:  # pandas raises many types for bad files
        raise BadInput(f"{where}: cannot read as {fmt}: {first_line(exc)}") from None
    names = _csv_header(source, where) if fmt == "csv" else [str(c) for c in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen and name:  # pandas names empty ones by place: "Unnamed: 3"
            # a schema snapshot, a feature list or a drift report that names
            # this column would not say which of the two it means
            raise BadInput(f"{where}: column '{name}' appears more than once")
        seen.add(name)
    return frame


def _check_unpacked(src: io.BytesIO, where: str) -> None:
    """Refuse a Parquet file whose cells, by its own footer, will not fit
    MAX_IN_MEMORY, before a byte of its data is unpacked."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(src).metadata
    cells = meta.num_rows * max(meta.num_columns, 1)
    src.seek(0)
    if cells * 8 > MAX_IN_MEMORY:
        raise BadInput(
            f"{where}: {meta.num_rows:,} rows of {meta.num_columns} columns would take "
            f"more than {MAX_IN_MEMORY / 2**30:g} GiB in memory; split the file"
        )


def _csv_header(source: bytes, where: str) -> list[str]:
    """The header as written: pandas renames a repeated name ('a', 'a.1').
    A first row longer than the header is refused: pandas took its first
    field as the row index and shifted the rest (a=2, b=3 for 1,2,3); a
    longer row further down is pandas' own error."""
    raw = io.BytesIO(source)
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text:
        try:
            # pandas takes the first non-blank line as the header, as here
            rows = (row for row in csv.reader(text) if row)
            header, first = next(rows, []), next(rows, [])
        except csv.Error as exc:  # e.g. a header field past csv's size limit
            raise BadInput(f"{where}: header: {exc}") from None
    other = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
    if other is not None:
        # a spreadsheet's export in a locale whose decimal mark is a comma:
        # read as one column named 'age;income' and registered so
        raise BadInput(
            f"{where}: cannot read as csv: its header is one column holding {other!r}; "
            "the file looks separated by it, and CSV here is comma-separated"
        )
    if len(first) > len(header):
        raise BadInput(
            f"{where}: cannot read as csv: its first row has {len(first)} fields, "
            f"the header {len(header)}"
        )
    return header
