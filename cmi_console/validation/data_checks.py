"""The `schema` and `quality` checks on the data a version is judged on."""

from __future__ import annotations

from typing import Any

from cmi_console.core.policy import ColumnContract, QualityCheck, SchemaCheck
from cmi_console.validation.results import FAIL, PASS, CheckResult
from cmi_console.validation.subject import Subject


def _dtype_ok(series: Any, dtype: str) -> bool:
    from pandas.api import types as t

    return {
        "int": lambda s: t.is_integer_dtype(s) or _reads_as_whole(s),
        "float": t.is_float_dtype,
        "number": t.is_numeric_dtype,
        "string": lambda s: t.is_object_dtype(s) or t.is_string_dtype(s),
        "bool": lambda s: t.is_bool_dtype(s) or _reads_as_yes_no(s),
    }[dtype](series)


# An empty cell changes how pandas reads a column: integers become floats,
# yes/no becomes objects (and, for a model that took yes/no as numbers, 1.0
# and 0.0: conformance.check_features). Their values still meet the dtype; a
# `nullable` contract had failed on every row of such a file.


def _reads_as_whole(series: Any) -> bool:
    from pandas.api import types as t

    present = series.dropna()
    return bool(t.is_float_dtype(series) and (present % 1 == 0).all())


def _reads_as_yes_no(series: Any) -> bool:
    from pandas.api import types as t

    present = series.dropna()
    if t.is_float_dtype(series):
        return bool(present.isin([0.0, 1.0]).all())
    return bool(t.is_object_dtype(series) and present.map(type).isin([bool]).all())


def column_failures(series: Any, contract: ColumnContract) -> dict[str, int]:
    """Each failure case of one column, counted."""
    out: dict[str, int] = {}
    if contract.dtype and not _dtype_ok(series, contract.dtype):
        out[f"dtype is {series.dtype}, not {contract.dtype}"] = len(series)
    nulls = int(series.isna().sum())
    if nulls and not contract.nullable:
        out["null"] = nulls
    present = series.dropna()
    from pandas.api.types import is_numeric_dtype

    if is_numeric_dtype(present):
        if contract.min is not None and (n := int((present < contract.min).sum())):
            out[f"below {contract.min}"] = n
        if contract.max is not None and (n := int((present > contract.max).sum())):
            out[f"above {contract.max}"] = n
    if contract.allowed is not None and (n := int((~present.isin(contract.allowed)).sum())):
        out["not allowed"] = n
    if contract.unique and (n := int(present.duplicated().sum())):
        out["duplicate"] = n
    return out


def run_schema(spec: SchemaCheck, subject: Subject) -> CheckResult:
    data = subject.evaluation().current
    per: dict[str, dict[str, int]] = {}
    for name, contract in spec.columns.items():
        if name not in data:
            if contract.required:
                per[name] = {"missing column": 1}
            continue
        failures = column_failures(data[name], contract)
        if failures:
            per[name] = failures
    if spec.strict:
        for extra in sorted(set(data.columns) - set(spec.columns)):
            per[str(extra)] = {"not in the contract": 1}
    total = sum(sum(f.values()) for f in per.values())
    return CheckResult(
        spec.label,
        spec.kind,
        FAIL if per else PASS,
        f"{total} failure(s) in {len(per)} column(s): "
        + "; ".join(f"{c}: " + ", ".join(f"{k} x{v}" for k, v in f.items()) for c, f in per.items())
        if per
        else f"{len(data)} rows meet the contract for {len(spec.columns)} column(s)",
        spec.blocking,
        value={"failures": per, "rows": int(len(data))},
        threshold=spec.model_dump(exclude={"kind", "name", "blocking"}),
    )


def _rows(frame: Any, keys: list[str]) -> Any:
    """Each row as a tuple of its values' text (`as_text`): as `str` a column
    of integers with one empty cell, which pandas reads as floats, had 50.0
    where the training split has 50, and no such row matched."""
    from cmi_console.validation.conformance import as_text

    text = frame[keys].apply(lambda col: as_text(col).astype(object).where(col.notna(), None))
    return text.itertuples(index=False, name=None)


def run_quality(spec: QualityCheck, subject: Subject) -> CheckResult:
    ev = subject.evaluation()
    data = ev.current
    columns = [*ev.features, ev.target]
    missing = {c: round(float(data[c].isna().mean()), 6) for c in columns if c in data}
    too_missing = {c: v for c, v in missing.items() if v > spec.max_missing_share}
    duplicate_share = round(float(data.duplicated().mean()), 6) if len(data) else 0.0
    constant = [c for c in columns if c in data and data[c].nunique(dropna=False) <= 1]
    keys = [c for c in columns if c in data and c in ev.reference]
    train_rows = set(_rows(ev.reference, keys))
    overlap = sum(r in train_rows for r in _rows(data, keys))
    leakage = round(overlap / len(data), 6) if len(data) else 0.0
    problems = []
    if too_missing:
        problems.append(
            "missing values: " + ", ".join(f"{c} {v:.1%}" for c, v in too_missing.items())
        )
    if duplicate_share > spec.max_duplicate_share:
        problems.append(f"duplicate rows {duplicate_share:.1%}")
    if constant and not spec.allow_constant:
        problems.append(f"constant column(s) {', '.join(constant)}")
    if leakage > spec.max_leakage_share:
        problems.append(f"{overlap} holdout row(s) also in training ({leakage:.1%})")
    return CheckResult(
        spec.label,
        spec.kind,
        FAIL if problems else PASS,
        "; ".join(problems)
        if problems
        else "no missing-value, duplicate, constant or leakage issue",
        spec.blocking,
        value={
            "missing_share": missing,
            "duplicate_share": duplicate_share,
            "constant": constant,
            "leakage_share": leakage,
        },
        threshold=spec.model_dump(exclude={"kind", "name", "blocking"}),
    )
