"""Data files (CSV or Parquet) read one way for every command: a file the
user names and a data file kept in the artifact store alike."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cmi_console.core.errors import BadInput, first_line

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


def read_path(path: Path) -> Any:
    return read(path, format_of(path), str(path))


def read(source: Path | bytes, fmt: str, where: str) -> Any:
    """The file as a DataFrame; BadInput, naming `where`, if it is not one."""
    import pandas as pd

    src = io.BytesIO(source) if isinstance(source, bytes) else source
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


def _check_unpacked(src: Path | io.BytesIO, where: str) -> None:
    """Refuse a Parquet file whose cells, by its own footer, will not fit
    MAX_IN_MEMORY, before a byte of its data is unpacked."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(src).metadata
    cells = meta.num_rows * max(meta.num_columns, 1)
    if isinstance(src, io.BytesIO):
        src.seek(0)
    if cells * 8 > MAX_IN_MEMORY:
        raise BadInput(
            f"{where}: {meta.num_rows:,} rows of {meta.num_columns} columns would take "
            f"more than {MAX_IN_MEMORY / 2**30:g} GiB in memory; split the file"
        )


def _csv_header(source: Path | bytes, where: str) -> list[str]:
    """The header as written: pandas renames a repeated name ('a', 'a.1').
    A first row longer than the header is refused: pandas took its first
    field as the row index and shifted the rest (a=2, b=3 for 1,2,3); a
    longer row further down is pandas' own error."""
    raw = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text:
        try:
            # pandas takes the first non-blank line as the header, as here
            rows = (row for row in csv.reader(text) if row)
            header, first = next(rows, []), next(rows, [])
        except csv.Error as exc:  # e.g. a header field past csv's size limit
            raise BadInput(f"{where}: header: {exc}") from None
    if len(first) > len(header):
        raise BadInput(
            f"{where}: cannot read as csv: its first row has {len(first)} fields, "
            f"the header {len(header)}"
        )
    return header
