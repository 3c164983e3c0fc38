"""Does a data file fit the model: the columns it was trained on, numbers
where it took numbers, and labels among the classes it knows. A monitoring
window and validation's `--data` are checked this way before anything is
measured, so a bad file is one line naming its first bad value, and nothing
is recorded."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from cmi_console.core.errors import BadInput
from cmi_console.store.data_files import FORMATS
from cmi_console.validation.subject import Evaluation


def known_classes(labels: Any) -> list[Any]:
    """The classes a classifier trained on these labels knows, in the order
    scikit-learn gives them (its `classes_`, the columns of its
    probabilities): sorted as text, 10 had come before 2, and a binary
    model's positive class was the other one than its probability's."""
    values = labels.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:  # mixed kinds, which no classifier orders: as text
        return sorted(values, key=str)


def check_features(frame: Any, features: list[str], reference: Any, where: str) -> Any:
    """`frame` with rows and the model's features, each of the kind the model
    took: numbers (finite, or missing) where it took numbers, text (or
    missing) where it took categories. Returned with a category column of
    numbers as their text and one empty throughout typed as the model knew
    it (pandas reads those as numbers, which a category encoder refused)."""
    import pandas as pd
    from pandas.api.types import (
        is_bool_dtype,
        is_datetime64_any_dtype,
        is_numeric_dtype,
        is_timedelta64_dtype,
    )

    if len(frame) == 0:
        raise BadInput(f"{where}: no rows")
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise BadInput(f"{where}: missing feature column(s) {', '.join(missing)}")
    for c in features:
        col = frame[c]
        if is_bool_dtype(reference[c]):  # yes/no: a file's True/False, or 1/0
            if not is_bool_dtype(col):
                frame = frame.assign(**{c: _yes_no(col, where)})
        elif is_numeric_dtype(reference[c]):  # a number the model expects must be a number
            if is_datetime64_any_dtype(col) or is_timedelta64_dtype(col):
                col = col.astype(object)  # to_numeric would take their nanoseconds
            if not is_numeric_dtype(col):
                parsed = pd.to_numeric(col, errors="coerce")
                first_bad(col, parsed, where, "a number")
                frame = frame.assign(**{c: parsed})
            check_finite(frame[c], where)
        elif col.isna().all():
            frame = frame.assign(**{c: col.astype(reference[c].dtype)})
        elif is_numeric_dtype(col):  # codes read as numbers: the model knew text
            # (read as floats when a cell is empty: 7.0 is the code "7")
            frame = frame.assign(**{c: as_text(col)})
        elif pd.api.types.infer_dtype(col, skipna=True) not in ("string", "empty"):
            # (that scan is in C; the one below, naming the value, in Python)
            text = col.map(lambda v: v if _is_text_or_missing(v) else None)
            first_bad(col, text, where, "text (a category)")
    return frame


YES_NO = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


def _yes_no(col: Any, where: str) -> Any:
    """A yes/no column the model took, as 1.0 / 0.0 (what it computed with),
    missing kept. pandas reads one with an empty cell as objects, and one
    with any other value as text: "'True' is not a number" had named a good
    value, and a number other than 1 or 0 had passed."""
    parsed = as_text(col).str.lower().map(YES_NO) if len(col.dropna()) else col.astype(float)
    first_bad(col, parsed, where, "True or False")
    return parsed.astype(float)


def _is_text_or_missing(value: Any) -> bool:
    # a list, a dict, bytes or an array in a category column cannot be encoded
    return isinstance(value, str) or value is None or (isinstance(value, float) and value != value)


def check_classes(values: Any, classes: list[Any], where: str) -> None:
    """Predictions and labels of a classifier must be classes it knows."""
    if not classes:
        return
    import numpy as np

    known = {_as_class(c) for c in classes}
    stray = (values.notna() & ~as_text(values).isin(known)).to_numpy()
    if stray.any():
        row = int(np.argmax(stray))
        raise BadInput(
            f"{_at(where, row)}: {values.name}: '{_shown(values.iloc[row])}' is not a class "
            f"of the model ({', '.join(sorted(known))})"
        )


def check_single_values(frame: Any, columns: list[str], where: str) -> None:
    """One value in each cell of these columns: a Parquet file can hold a
    list, a mapping or an array there, which no later step can compare or
    hash (an internal error); the first one is named."""
    from pandas.api.types import is_object_dtype, is_scalar

    for c in columns:
        if c in frame.columns and is_object_dtype(frame[c]):
            col = frame[c]
            first_bad(col, col.map(lambda v: v if is_scalar(v) else None), where, "a single value")


def one_row_per_key(frame: Any, key: str, group: str, where: str) -> None:
    """A row key names one row of each `group` (a window's `id`, one row per
    version): a shadow pairs its versions' rows by it, and a key given to
    many rows paired each with each (a million pairs from 1,000 rows)."""
    import numpy as np

    repeat = (frame.duplicated(subset=[group, key]) & frame[key].notna()).to_numpy()
    if repeat.any():
        row = int(np.argmax(repeat))
        raise BadInput(
            f"{_at(where, row)}: {key}: '{_shown(frame[key].iloc[row])}' is given twice for "
            f"{group} {frame[group].iloc[row]}; a row key names one row"
        )


def require_labels(labels: Any, where: str) -> None:
    """A label on every row: training and scoring take no empty one."""
    if labels.isna().any():
        first_bad(labels.where(labels.notna(), ""), labels, where, "a label")


def as_text(values: Any) -> Any:
    """Each value as the text of the class or value it names (`_as_class`: 1.0
    is 1), missing values kept: looked up through the column's distinct
    values, not row by row."""
    import pandas as pd

    if isinstance(values.dtype, pd.StringDtype):  # text already (pandas 3's default)
        return values
    names = {v: _as_class(v) for v in values.dropna().unique().tolist()}
    return values.map(names, na_action="ignore")


def _as_class(value: Any) -> str:
    # a column of integer labels with an empty cell is read as floats: 1.0 is
    # 1; a yes/no column so read is 1.0 and 0.0 too, so True is 1
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_current(ev: Evaluation, where: str) -> None:
    """Validation's given data (`ev.current`, typed as `check_features` says):
    rows, the model's features, and, if it has the target column, a label on
    every row (checks score the model against them)."""
    import pandas as pd

    data = ev.current = check_features(ev.current, ev.features, ev.reference, where)
    if ev.target not in data:
        return  # unlabelled: checks that need labels say so
    check_single_values(data, [ev.target], where)
    labels = data[ev.target]
    require_labels(labels, where)
    if ev.task == "classification":
        check_classes(labels, known_classes(ev.reference[ev.target]), where)
    else:
        first_bad(labels, pd.to_numeric(labels, errors="coerce"), where, "a number")
        check_finite(pd.to_numeric(labels), where)


def check_finite(values: Any, where: str) -> None:
    # an empty cell is a missing value; inf is no value at all
    finite = values.replace([float("inf"), float("-inf")], float("nan"))
    first_bad(values, finite, where, "a finite number")


def first_bad(raw: Any, parsed: Any, where: str, what: str) -> None:
    """One line naming the first value that did not parse: its line in a CSV
    file, its row in a Parquet file."""
    import numpy as np

    bad = (parsed.isna() & raw.notna()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise BadInput(f"{_at(where, row)}: {raw.name}: '{_shown(raw.iloc[row])}' is not {what}")


def _at(where: str, row: int) -> str:
    """Where a file's row is: its line in a CSV file, its row in a Parquet file
    (which has no lines to count)."""
    if FORMATS.get(PurePath(where).suffix.lower()) == "parquet":
        return f"{where}: row {row + 1}"
    return f"{where}:{row + 2}"  # +1 for the header, +1 one-based


def _shown(value: Any) -> str:
    # a cell may hold anything: 80 characters name it, as for other echoed values
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"
