"""Production feedback: monitoring windows, late labels, alerts, retraining
requests and zombie models.

A window is measured outside any write transaction (validation.monitoring),
then stored with its result hash in one. `evaluate` applies the policy's
triggers to the windows and, for a canary, its auto-rollback and
auto-advance criteria, as signed deployment decisions.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cmi_console.core import clock, names, roles
from cmi_console.core import deployments as dm
from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.errors import BadInput, NotFound, first_line
from cmi_console.core.policy import Criteria, Effective
from cmi_console.services import deployments, ledger, lineage, registry
from cmi_console.services.context import Context, Tx
from cmi_console.services.identity import active_roles, require_role
from cmi_console.services.policies import effective_for, effective_for_many
from cmi_console.store import data_files
from cmi_console.store.tables import Alert, MonitoringWindow, RetrainRequest, table

if TYPE_CHECKING:
    from cmi_console.services import training

WINDOWS, ALERTS, RETRAINS = table(MonitoringWindow), table(Alert), table(RetrainRequest)
TRIGGERS = ("performance", "drift", "age")
TREND_METRICS = (
    "drift_share",
    "prediction_drift",
    "roc_auc",
    "accuracy",
    "error_rate",
    "rmse",
    "r2",
)


@dataclass
class Serving:
    """An environment's traffic now, read from its latest deployment event."""

    environment: str
    primary: int  # the stable version (or the only one)
    versions: list[int]  # every version that takes or mirrors traffic
    shares: dict[str, int]
    mirror: dict[str, int]
    deployment: Any  # the open deployment, or None
    candidate: int | None
    mode: str | None  # shadow | ab (canary and A/B rows are independent)


def _serving(conn: Connection, model: Any, env: str) -> Serving:
    now = deployments.serving_events(conn, model, env)
    if not now or not (now[0]["shares"] or now[0]["mirror"]):
        raise BadInput(f"--env: nothing serves {model.name} in {env}; deploy a version first")
    ev = now[0]
    versions = sorted({int(v) for v in [*ev["shares"], *ev["mirror"]]})
    dep = deployments.open_deployment(conn, model.id, env)
    return _picture(conn, env, versions, ev["shares"], ev["mirror"], dep)


def _picture(
    conn: Connection,
    env: str,
    versions: list[int],
    shares: dict[str, int],
    mirror: dict[str, int],
    dep: Any,
) -> Serving:
    """Which version is the stable one and how a rollout compares with it:
    shadow rows pair up, canary and A/B rows are independent."""
    numbers = deployments.version_numbers(conn, *(() if dep is None else (dep.version_id,)))
    candidate = numbers.get(dep.version_id) if dep is not None else None
    others = [v for v in versions if v != candidate]
    primary = others[0] if others else versions[0]
    mode = None
    if dep is not None and candidate in versions and primary != candidate:
        mode = "shadow" if dep.strategy == "shadow" else "ab"
    return Serving(env, primary, versions, shares, mirror, dep, candidate, mode)


def _version_rows(conn: Connection, model: Any, numbers: list[int]) -> dict[int, Any]:
    rows = conn.execute(
        select(registry.VERSIONS).where(
            registry.VERSIONS.c.model_id == model.id, registry.VERSIONS.c.version.in_(numbers)
        )
    ).all()
    return {r.version: r for r in rows}


class _Models:
    """Each version's estimator, loaded once per call, safely (skops)."""

    def __init__(self, ctx: Context, model: str, rows: dict[int, Any], allow_pickle: bool) -> None:
        self.ctx, self.model, self.rows, self.allow_pickle = ctx, model, rows, allow_pickle
        self._cache: dict[int, Any] = {}

    def __call__(self, version: int) -> Any:
        if version not in self._cache:
            from cmi_console.store.model_files import loads

            r = self.rows[version]
            self._cache[version] = loads(
                self.ctx.workspace.artifacts.read(r.artifact_sha256),
                r.artifact_format,
                allow_pickle=self.allow_pickle,
                where=f"{self.model}:{version}",
            )
        return self._cache[version]


def _spec(ctx: Context, model: Any, policy: Effective, s: Serving, rows: dict[int, Any]) -> Any:
    """What a window is measured against: the primary version's recipe, its
    training split as reference, and each version's predictions on it."""
    from cmi_console.services.training import frames, recipe_of
    from cmi_console.validation.conformance import known_classes
    from cmi_console.validation.monitoring import WindowSpec
    from cmi_console.validation.training import feature_columns, split

    ref = f"{model.name}:{s.primary}"
    try:
        recipe, _raw, blobs = recipe_of(ctx, ref)
    except NotFound:
        raise BadInput(
            f"{ref} was not trained with `cmi train`: monitoring measures windows against "
            "the training data its recipe recorded"
        ) from None
    train, holdout = frames(blobs)
    parts = split(recipe, train, holdout)
    features = feature_columns(recipe, train)
    models = _Models(ctx, model.name, rows, policy.policy.allow_pickle)
    classes = known_classes(train[recipe.data.target])
    reference = parts.train
    import pandas as pd

    preds: dict[int, Any] = {}
    for v in s.versions:
        est = models(v)
        if recipe.task == "classification" and len(classes) == 2:
            preds[v] = pd.Series(est.predict_proba(reference[features])[:, 1])
        else:
            preds[v] = pd.Series(est.predict(reference[features]))
    m = policy.policy.monitoring
    spec = WindowSpec(
        features=features,
        target=recipe.data.target,
        task=recipe.task,
        sensitive=list(recipe.data.sensitive),
        reference=reference,
        reference_predictions=preds,
        primary=s.primary,
        classes=classes if recipe.task == "classification" else [],
        champion=s.primary if s.mode else None,
        challenger=s.candidate if s.mode else None,
        mode=s.mode,
        significance=m.significance,
        power=m.power,
        comparison_metric=m.comparison_metric
        if recipe.task == "classification" or m.comparison_metric in ("rmse", "mae")
        else "mae",
    )
    return spec, models


def _prepare(frame: Any, spec: Any, s: Serving, models: Any, predict: bool, where: str) -> Any:
    """Check the window's columns, and with `predict`, score it with the
    deployed versions as the serving layer would have."""
    import pandas as pd

    from cmi_console.validation.conformance import (
        check_classes,
        check_features,
        check_finite,
        check_single_values,
        first_bad,
        one_row_per_key,
    )
    from cmi_console.validation.monitoring import RESERVED, kpi_columns

    frame = check_features(frame, spec.features, spec.reference, where)
    check_single_values(frame, [*RESERVED, spec.target], where)
    for column in kpi_columns(frame, spec):  # a KPI's mean of inf has no JSON form
        check_finite(frame[column], where)
    if "version" in frame:
        # astype(int) cut 2.5 to 2 and overflowed on 25 digits (an internal error);
        # below 2**53 a float holds every whole number exactly
        raw = frame["version"]
        numbers = pd.to_numeric(raw, errors="coerce")
        whole = numbers.where((numbers % 1 == 0) & numbers.between(1, 2**53))
        first_bad(raw.where(raw.notna(), ""), whole, where, "a version number")
        frame["version"] = whole.astype("int64")
        stray = sorted(set(frame["version"].unique().tolist()) - set(s.versions))
        if stray:
            raise BadInput(
                f"{where}: version: {', '.join(map(str, stray))} does not serve "
                f"{s.environment} (serving: {', '.join(map(str, s.versions))})"
            )
    if "prediction" not in frame:
        if not predict:
            raise BadInput(f"{where}: no 'prediction' column; add one, or pass --predict")
        frame = _predict(frame, spec, s, models, where)
    elif "version" not in frame:
        frame = frame.assign(version=s.primary)
    for col in ["prediction"] + ([spec.target] if spec.target in frame else []):
        check_classes(frame[col], spec.classes, where)
    if "id" in frame:
        one_row_per_key(frame, "id", "version", where)
    if "score" in frame:
        scores = pd.to_numeric(frame["score"], errors="coerce")
        if scores.isna().any() or ((scores < 0) | (scores > 1)).any():
            raise BadInput(f"{where}: score: must be probabilities between 0 and 1")
    if spec.target in frame and frame[spec.target].isna().all():
        frame = frame.drop(columns=[spec.target])
    return frame


def _predict(frame: Any, spec: Any, s: Serving, models: Any, where: str) -> Any:
    """Rows go to versions as the traffic shares say (a seeded, stable split);
    a shadow also scores every row with the candidate."""
    import numpy as np
    import pandas as pd

    if "version" not in frame:
        if s.mode == "ab" and len(s.shares) > 1:
            # seeded by the rows themselves: the same window splits the same way
            seed = int(pd.util.hash_pandas_object(frame[spec.features], index=False).sum())
            draw = np.random.default_rng(seed % 2**32).random(len(frame)) * 100
            cand = s.shares.get(str(s.candidate), 0)
            frame = frame.assign(version=np.where(draw < cand, s.candidate, s.primary))
        else:
            frame = frame.assign(version=s.primary)
            if s.mode == "shadow" and s.candidate is not None:
                copy = frame.assign(version=s.candidate)
                frame = pd.concat([frame, copy], ignore_index=True)
    parts = []
    for v, sub in frame.groupby("version", sort=True):
        est = models(int(v))
        X = sub[spec.features]
        try:
            with warnings.catch_warnings():  # what goes wrong is said below, once
                warnings.simplefilter("ignore")
                sub = sub.assign(prediction=est.predict(X))
                if spec.binary:
                    sub = sub.assign(score=np.round(est.predict_proba(X)[:, 1], 6))
        except ValueError as exc:  # e.g. empty cells a model takes no NaN for
            raise BadInput(
                f"{where}: version {v} cannot score these rows: {first_line(exc)}"
            ) from None
        parts.append(sub)
    return pd.concat(parts).sort_index(kind="stable")


def _period(frame: Any, where: str) -> tuple[str | None, str | None]:
    """The window's first and last instant, to the microsecond as every instant
    we record. Its timestamps are ISO 8601 text (without an offset, UTC) or a
    Parquet datetime column: pandas alone took numbers as nanoseconds since
    1970 (epoch seconds became a day in 1970), '-1' as the year -1, and
    guessed at other layouts; each is bad input here."""
    import pandas as pd
    from pandas.api.types import is_datetime64_any_dtype

    from cmi_console.validation.conformance import first_bad

    if "timestamp" not in frame or frame["timestamp"].isna().all():
        return None, None
    raw = frame["timestamp"]
    if is_datetime64_any_dtype(raw):
        t = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw
    else:
        text = raw.map(lambda v: v if isinstance(v, str) else None, na_action="ignore")
        t = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        t = t.where(t.dt.year.between(1, 9999))  # what a datetime holds
        first_bad(raw, t, where, "an ISO 8601 time")
    # feedback cannot come from the future (beyond the clock skew a team's
    # hosts may have): a row stamped 2099 ran the recorded period to 2099
    now = clock.utc_now()
    latest = pd.Timestamp(clock.instant(now) + clock.MAX_SKEW)
    minutes = int(clock.MAX_SKEW.total_seconds() // 60)
    what = f"a time up to now (it is in the future: now {now}, {minutes} min of clock skew allowed)"
    first_bad(raw, t.where(t <= latest), where, what)
    return tuple(  # type: ignore[return-value]
        clock.format_time(x.floor("us").to_pydatetime()) for x in (t.min(), t.max())
    )


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def _store_frame(ctx: Context, frame: Any) -> tuple[str, str]:
    """A window the console scored is kept as Parquet (what was measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "window.parquet"
        frame.to_parquet(path, index=False)
        digest, _size = ctx.put_artifact(path)
    return digest, "parquet"


def _load_frame(ctx: Context, sha: str, fmt: str) -> Any:
    return data_files.read(ctx.workspace.artifacts.read(sha), fmt, f"window data {sha[:12]}")


def _result(
    model: str, env: str, data_sha: str, labels: dict[str, Any] | None, metrics: Any
) -> str:
    return _digest(
        {
            "model": model,
            "environment": env,
            "data_sha256": data_sha,
            "labels": labels,
            "metrics": metrics,
        }
    )


def _summaries(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {v: e["summary"] for v, e in metrics["versions"].items()}
    comp = metrics.get("comparison")
    if comp:
        out["comparison"] = {
            k: comp.get(k)
            for k in ("mode", "champion", "challenger", "agreement", "difference", "p_value")
            if k in comp
        } | {"status": comp.get("status"), "still_needed": comp.get("still_needed")}
    return out


def ingest(
    ctx: Context,
    model_name: str,
    env: str,
    path: Path,
    *,
    predict: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Measure a window and record it (one entry, audited by its result hash).

    The view also names the columns nothing measured (`unmeasured`), with
    their first value: said, not stored."""
    from cmi_console.validation.monitoring import analyse, unmeasured

    actor = ctx.require_actor()
    where = str(path)
    with ctx.read() as conn:
        require_role(conn, actor, roles.MONITORS, "ingest monitoring windows")
        model = registry.model_row(conn, model_name)
        policy = effective_for(conn, model)
        policy.environment(env)
        s = _serving(conn, model, env)
        rows = _version_rows(conn, model, s.versions)
    window = data_files.load(path, "--window")
    frame = window.frame
    start, end = _period(frame, where)
    spec, models = _spec(ctx, model, policy, s, rows)
    given = set(frame.columns)
    frame = _prepare(frame, spec, s, models, predict, where)
    metrics = analyse(frame, spec)
    ignored = unmeasured(frame, spec)
    # a window that brings its predictions is kept as given: the bytes measured
    stored = window if "prediction" in given else None
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.MONITORS, "ingest monitoring windows")
        now = _serving(tx.conn, model, env)
        if (now.versions, now.candidate, now.mode) != (s.versions, s.candidate, s.mode):
            raise BadInput(
                f"{model.name} in {env}: the deployment changed while the window was "
                "measured; ingest it again"
            )
        if stored is not None:
            data_sha, fmt = tx.ctx.put_artifact(stored.blob)[0], stored.fmt
        else:
            data_sha, fmt = _store_frame(ctx, frame)
        before = tx.conn.execute(
            select(WINDOWS)
            .where(
                WINDOWS.c.model_id == model.id,
                WINDOWS.c.environment == env,
                WINDOWS.c.data_sha256 == data_sha,
            )
            .order_by(WINDOWS.c.id)
            .limit(1)
        ).first()
        if before is not None:
            # the same rows again (a CI job's retry, a copy of the file): a
            # second window had counted them twice, toward a trigger's K
            # windows in a row and a comparison's sample
            return {**window_view(before, model.name), "created": False, "unmeasured": ignored}
        result = _result(model.name, env, data_sha, None, metrics)
        row = {
            "model_id": model.id,
            "environment": env,
            "deployment_id": s.deployment.id if s.deployment is not None else None,
            "name": (name or path.name)[:200],
            "rows": len(frame),
            "period_start": start,
            "period_end": end,
            "data_sha256": data_sha,
            "data_format": fmt,
            "labels_sha256": None,
            "versions": sorted(int(v) for v in metrics["versions"]),
            "metrics": metrics,
            "summary": _summaries(metrics),
            "result_sha256": result,
            "created_at": tx.time,
            "created_by": actor,
            "labelled_at": None,
        }
        wid = tx.insert(WINDOWS, row)
        lineage.connect(
            tx,
            [(("version", rows[v].id), ("window", wid), "monitored") for v in row["versions"]],
        )
        tx.record(
            "monitor.ingest",
            f"model:{model.name}",
            {
                "window": wid,
                "environment": env,
                "name": row["name"],
                "rows": row["rows"],
                "data_sha256": data_sha,
                "result_sha256": result,
                "versions": row["versions"],
            },
        )
    return {**window_view({**row, "id": wid}, model.name), "created": True, "unmeasured": ignored}


def labels(
    ctx: Context, model_name: str, window_id: int, path: Path, *, key: str | None = None
) -> dict[str, Any]:
    """Attach labels that arrived late, and measure the window again.

    The same labels again, joined the same way (a CI job's retry), change
    nothing: answered with the window (`created` false), nothing written."""
    from cmi_console.validation.conformance import check_classes, check_single_values
    from cmi_console.validation.monitoring import analyse

    actor = ctx.require_actor()
    where = str(path)
    with ctx.read() as conn:
        require_role(conn, actor, roles.MONITORS, "attach labels")
        model = registry.model_row(conn, model_name)
        w = _window(conn, model, window_id)
        policy = effective_for(conn, model)
        s = _serving_of(conn, model, w)
        rows = _version_rows(conn, model, s.versions)
    frame = _load_frame(ctx, w.data_sha256, w.data_format)
    spec, _models = _spec(ctx, model, policy, s, rows)
    read = data_files.load(path, "--file")
    given = read.frame
    if spec.target not in given.columns:
        raise BadInput(f"{where}: no '{spec.target}' column (the model's target)")
    check_single_values(given, [spec.target, *([key] if key else [])], where)
    check_classes(given[spec.target], spec.classes, where)
    frame, join = _attach(frame, given, spec.target, key, where, spec.features)
    metrics = analyse(frame, spec)
    labels_sha = read.sha256
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.MONITORS, "attach labels")
        result = _result(
            model.name, w.environment, w.data_sha256, {"sha256": labels_sha, "key": key}, metrics
        )
        now = tx.conn.execute(select(WINDOWS).where(WINDOWS.c.id == w.id)).one()
        if now.result_sha256 == result:  # these labels, this join, these measures
            return {**window_view(now, model.name), "join": join, "created": False}
        tx.ctx.put_artifact(read.blob)
        values = {
            "labels_sha256": labels_sha,
            "metrics": metrics,
            "summary": _summaries(metrics),
            "result_sha256": result,
            "labelled_at": tx.time,
        }
        tx.update(WINDOWS, w.id, values)
        tx.record(
            "monitor.labels",
            f"model:{model.name}",
            {
                "window": w.id,
                "labels_sha256": labels_sha,
                "key": key,
                "labelled": join["labelled"],
                "unknown_keys": join["unknown_keys"],
                "result_sha256": result,
            },
        )
    return {
        **window_view({**dict(w._mapping), **values}, model.name),
        "join": join,
        "created": True,
    }


def _attach(
    frame: Any, given: Any, target: str, key: str | None, where: str, features: list[str]
) -> tuple[Any, dict[str, int | None]]:
    """Labels join on `key`, else by position: one per window row, or one per
    input when every version scored the same inputs (a shadow). The labels
    the window came with stay where the file has none; a labels file given
    before is replaced (the window is measured on its data and this file).

    Also returns how the join went, for the user and the log: labels that
    silently joined nothing (a key typed in another form, a file for another
    window) would otherwise go unnoticed while the window looks labelled."""
    import numpy as np
    import pandas as pd

    labels = given[target]
    if labels.isna().all():
        raise BadInput(f"{where}: {target}: no labels (the column is empty)")
    unknown: int | None = None  # labels whose key is in no row of the window
    if key is not None:
        for side, f in (("labels file", given), ("window", frame)):
            if key not in f.columns:
                raise BadInput(f"--key: the {side} has no column '{key}'")
        if given[key].duplicated().any():
            raise BadInput(f"{where}: {key}: duplicate keys")
        known = given[labels.notna()]
        new = frame[key].map(dict(zip(known[key], known[target], strict=True)))
        if new.isna().all():
            raise BadInput(f"{where}: {key}: none of its {len(known)} keys is in the window")
        unknown = int((~known[key].isin(frame[key])).sum())
    elif len(given) == len(frame):
        _same_truth(frame, labels.to_numpy(), features, where)
        new = pd.Series(labels.to_numpy(), index=frame.index)
    else:
        groups = frame.groupby("version").indices
        inputs = {len(idx) for idx in groups.values()}
        if inputs != {len(given)}:
            shape = f"{len(frame)} rows"
            if len(inputs) == 1 and len(groups) > 1:
                shape = f"{inputs.pop()} inputs ({len(frame)} rows: each version scored them)"
            raise BadInput(
                f"{where}: {len(given)} labels for a window of {shape}; "
                "give one per row, or join with --key"
            )
        values = np.empty(len(frame), dtype=labels.dtype)
        for idx in groups.values():
            values[idx] = labels.to_numpy()
        new = pd.Series(values, index=frame.index)
    from_file = int(new.notna().sum())
    if target in frame:
        new = new.where(new.notna(), frame[target])
    labelled = int(new.notna().sum())
    join = {
        "given": int(labels.notna().sum()),
        "from_file": from_file,
        "unknown_keys": unknown,
        "labelled": labelled,
        "unlabelled": len(frame) - labelled,
    }
    return frame.assign(**{target: new}), join


def _same_truth(frame: Any, labels: Any, features: list[str], where: str) -> None:
    """One label per row of a shadow window (every version scored the same
    inputs, in the same order) must give one input one truth: two labels for
    it had measured each version against a different answer."""
    import pandas as pd

    if "version" not in frame.columns:
        return
    groups = list(frame.groupby("version", sort=True).indices.items())
    if len(groups) < 2 or len({len(rows) for _, rows in groups}) != 1:
        return
    (first, rows0), *others = groups
    inputs = frame.iloc[rows0][features].reset_index(drop=True)
    for version, rows in others:
        if not frame.iloc[rows][features].reset_index(drop=True).equals(inputs):
            return  # other inputs (a canary): each row its own truth
        a, b = labels[rows0], labels[rows]
        differ = ~((a == b) | (pd.isna(a) & pd.isna(b)))
        if differ.any():
            at = int(differ.argmax())
            one, two = (x.item() if hasattr(x, "item") else x for x in (a[at], b[at]))
            raise BadInput(
                f"{where}: the labels in rows {int(rows0[at]) + 1} and {int(rows[at]) + 1} "
                f"differ ({one!r}, {two!r}), but both rows are one input, scored by v{first} "
                f"and v{version} (a shadow window): give one label per input"
            )


def _window(conn: Connection, model: Any, window_id: int) -> Any:
    w = conn.execute(
        select(WINDOWS).where(WINDOWS.c.id == window_id, WINDOWS.c.model_id == model.id)
    ).first()
    if w is None:
        raise NotFound(f"window {window_id} of {model.name} does not exist")
    return w


def _serving_of(conn: Connection, model: Any, w: Any) -> Serving:
    """The serving picture a window was taken under (its versions, its rollout)."""
    dep = None
    if w.deployment_id is not None:
        dep = conn.execute(
            select(deployments.DEPLOYMENTS).where(deployments.DEPLOYMENTS.c.id == w.deployment_id)
        ).one()
    return _picture(conn, w.environment, list(w.versions), {}, {}, dep)


def window_view(row: Any, model: str) -> dict[str, Any]:
    r = row if isinstance(row, dict) else dict(row._mapping)
    return {
        "window": r["id"],
        "model": model,
        "environment": r["environment"],
        "name": r["name"],
        "rows": r["rows"],
        "period": [r["period_start"], r["period_end"]],
        "versions": r["versions"],
        "deployment": r["deployment_id"],
        "labelled": r["labels_sha256"] is not None or _has_labels(r["summary"]),
        "summary": r["summary"],
        "result_sha256": r["result_sha256"],
        "data_sha256": r["data_sha256"],
        "created_at": r["created_at"],
        "created_by": r["created_by"],
        "labelled_at": r["labelled_at"],
    }


def _has_labels(summary: dict[str, Any]) -> bool:
    return any(isinstance(s, dict) and ("accuracy" in s or "rmse" in s) for s in summary.values())


def show_window(ctx: Context, model_name: str, window_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        model = registry.model_row(conn, model_name)
        w = _window(conn, model, window_id)
    return {**window_view(w, model.name), "metrics": w.metrics}


# --- status ------------------------------------------------------------------


def status(
    ctx: Context, model_name: str, env: str | None = None, *, version: int | None = None
) -> dict[str, Any]:
    """Windows (summaries only) with their trends, open alerts and retraining
    requests, and what serves now."""
    cols = [c for c in WINDOWS.c if c.name not in ("metrics",)]
    with ctx.read() as conn:
        model = registry.model_row(conn, model_name)
        stmt = select(*cols).where(WINDOWS.c.model_id == model.id).order_by(WINDOWS.c.id)
        if env is not None:
            stmt = stmt.where(WINDOWS.c.environment == env)
        windows = [window_view(r, model.name) for r in conn.execute(stmt)]
        alerts = _alerts(conn, model, open_only=False)
        retrains = _retrains(conn, model)
        serving = deployments.serving_events(conn, model, env)
    if version is not None:
        windows = [w for w in windows if version in w["versions"]]
    # per version: the windows it appears in, and each metric over them
    trends: dict[str, dict[str, list[Any]]] = {}
    for w in windows:
        for v in w["versions"]:
            summ = w["summary"].get(str(v)) or {}
            series = trends.setdefault(str(v), {"windows": []})
            series["windows"].append(w["window"])
            for metric in TREND_METRICS:
                series.setdefault(metric, []).append(summ.get(metric))
    trends = {
        v: {m: vals for m, vals in series.items() if any(x is not None for x in vals)}
        for v, series in trends.items()
    }
    return {
        "model": model.name,
        "environment": env,
        "serving": serving,
        "windows": windows,
        "trends": trends,
        "alerts": alerts,
        "retrain_requests": retrains,
    }


def _alerts(conn: Connection, model: Any | None, *, open_only: bool = True) -> list[dict[str, Any]]:
    stmt = (
        select(ALERTS, registry.MODELS.c.name.label("model"), registry.VERSIONS.c.version)
        .join(registry.MODELS, registry.MODELS.c.id == ALERTS.c.model_id)
        .join(registry.VERSIONS, registry.VERSIONS.c.id == ALERTS.c.version_id)
        .order_by(ALERTS.c.id.desc())
    )
    if model is not None:
        stmt = stmt.where(ALERTS.c.model_id == model.id)
    if open_only:
        stmt = stmt.where(ALERTS.c.status == "open")
    return [
        {
            "alert": a.id,
            "model": a.model,
            "version": a.version,
            "environment": a.environment,
            "kind": a.kind,
            "status": a.status,
            "message": a.message,
            "detail": _detail(a.message, f"{a.model}:{a.version}", a.kind),
            "windows": a.windows,
            "created_at": a.created_at,
            "created_by": a.created_by,
            "closed_at": a.closed_at,
            "closed_by": a.closed_by,
        }
        for a in conn.execute(stmt)
    ]


def _detail(message: str, version: str, kind: str) -> str:
    """The message without the version and kind it opens with: the message
    stands alone in the log and in hook payloads, but a table or a version's
    screen shows both already ("credit-risk:2 performance: credit-risk:2
    performance: 2 window(s) ...")."""
    for opening in (f"{version} {kind}: ", f"{version} "):
        if message.startswith(opening):
            return message[len(opening) :]
    return message


def _retrains(conn: Connection, model: Any) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(RETRAINS).where(RETRAINS.c.model_id == model.id).order_by(RETRAINS.c.id)
    ).all()
    numbers = deployments.version_numbers(
        conn, *[r.version_id for r in rows], *[r.candidate_id for r in rows]
    )
    return [
        {
            "request": r.id,
            "alert": r.alert_id,
            "version": numbers.get(r.version_id),
            "candidate": numbers.get(r.candidate_id) if r.candidate_id else None,
            "status": r.status,
            "created_at": r.created_at,
            "created_by": r.created_by,
            "closed_at": r.closed_at,
        }
        for r in rows
    ]


def open_alerts(ctx: Context, limit: int = 20) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return _alerts(conn, None)[:limit]


def close_alert(ctx: Context, alert_id: int, comment: str) -> dict[str, Any]:
    """Close an open alert. The same closing again by its closer (a script's
    retry) is answered, nothing written; any other names the closing made."""
    if not comment.strip():
        raise BadInput("--comment: say why the alert is closed")
    names.free_text(comment, "--comment")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.MONITORS | {"risk-officer"}, "close alerts")
        a = tx.conn.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).first()
        if a is None:
            raise NotFound(f"alert {alert_id} does not exist")
        model = registry.model_name(tx.conn, a.model_id)
        if a.status != "open":
            closed = ledger.newest(
                tx.conn,
                f"model:{model}",
                ("alert.close",),
                lambda e: e["data"].get("alert") == a.id,
            )
            said = None if closed is None else closed["data"].get("comment")
            if (a.closed_by, said) == (actor, comment):
                return {"alert": alert_id, "status": a.status, "created": False}
            why = f": {said}" if said is not None else ""
            raise BadInput(f"alert {alert_id} is already {a.status} (by {a.closed_by}{why})")
        tx.update(ALERTS, a.id, {"status": "closed", "closed_at": tx.time, "closed_by": actor})
        tx.record("alert.close", f"model:{model}", {"alert": a.id, "comment": comment})
    return {"alert": alert_id, "status": "closed", "created": True}


# --- triggers ------------------------------------------------------------------


def _streak(windows: list[Any], version: int, breach: Any) -> list[int]:
    """The newest run of consecutive windows of `version` that breach; windows
    that do not measure the metric (no labels yet) neither break nor extend it."""
    run: list[int] = []
    for w in reversed(windows):
        summ = w.summary.get(str(version))
        if summ is None:
            continue
        verdict = breach(summ)
        if verdict is None:
            continue
        if not verdict:
            break
        run.append(w.id)
    return list(reversed(run))


def _performance_breach(criteria: Criteria) -> Any:
    def check(summ: dict[str, Any]) -> bool | None:
        keys = set(criteria.max) | set(criteria.min)
        if not keys & set(summ):
            return None
        return bool(criteria.breaches(summ))

    return check


def _drift_breach(share: float) -> Any:
    def check(summ: dict[str, Any]) -> bool | None:
        value = summ.get("drift_share")
        return None if value is None else value >= share

    return check


def evaluate(
    ctx: Context, model_name: str, env: str, *, retrain: Path | None = None
) -> dict[str, Any]:
    """Apply the triggers and the canary criteria; with `retrain`, train the
    recipe on that data for each open retraining request, validate the
    candidate and open its promotion request. Nothing is ever promoted here."""
    fitted: dict[int, training.Fitted] = {}
    data = None
    if retrain is not None:
        # trained before the evaluation writes anything: a file the recipe
        # cannot train on (a missing column, an empty label, data whose
        # candidate may not answer) had been found only after the triggers,
        # alerts and requests were recorded
        what = "--retrain (register, validate, request)"
        with ctx.read() as conn:
            require_role(conn, ctx.require_actor(), roles.RETRAINERS, what)
        data = data_files.load(retrain, "--retrain")
        fitted = {
            v: _refit(ctx, f"{model_name}:{v}", data) for v in _to_retrain(ctx, model_name, env)
        }
    with ctx.write() as tx:
        out = _evaluate_in(tx, model_name, env)
    if data is not None:
        # one candidate answers every open request about the same version
        by_version: dict[int, list[dict[str, Any]]] = {}
        for r in out["open_retrain_requests"]:
            by_version.setdefault(r["version"], []).append(r)
        out["retrained"] = [
            _retrain(
                ctx,
                model_name,
                version,
                reqs,
                # a request another evaluator opened since the look ahead
                fitted.get(version) or _refit(ctx, f"{model_name}:{version}", data),
            )
            for version, reqs in sorted(by_version.items())
        ]
    return out


def _refit(ctx: Context, base: str, data: data_files.DataFile) -> training.Fitted:
    """`base`'s recipe trained on `data`, refused unless its candidate may
    answer a retraining request: a new one, or the one this same run
    registered before if a retraining stopped half way left it (registered,
    perhaps validated or requested, its requests still open). One that
    answered a request already, was retired, or was rejected at a gate may
    not: those requests need newer data."""
    from cmi_console.services import training
    from cmi_console.services.gates import REQUESTS

    fitted = training.fit_retrain(ctx, base, data)
    if fitted.registered is None:
        return fitted
    ref = f"{fitted.recipe.model}:{fitted.registered}"
    with ctx.read() as conn:
        cand = registry.version_row(conn, ref)
        answered = conn.execute(
            select(RETRAINS.c.id)
            .where(RETRAINS.c.candidate_id == cand.id)
            .order_by(RETRAINS.c.id)
            .limit(1)
        ).scalar()
        rejected = conn.execute(
            select(REQUESTS.c.id, REQUESTS.c.to_stage)
            .where(REQUESTS.c.version_id == cand.id, REQUESTS.c.status == "rejected")
            .limit(1)
        ).first()
    if answered is not None:
        why = f"which answered retraining request #{answered}"
    elif cand.status == registry.RETIRED:
        why = "which was retired"
    elif rejected is not None:
        why = f"whose request #{rejected.id} to {rejected.to_stage} was rejected"
    else:
        return fitted
    training.already_trained(fitted, base, f"gave {ref}, {why}; run {fitted.run_key}")


class _Judged(Exception):
    def __init__(self, out: dict[str, Any]) -> None:
        self.out = out


def _to_retrain(ctx: Context, model_name: str, env: str) -> list[int]:
    """The versions whose retraining requests will be open once the triggers
    are applied: they are applied in a transaction that is rolled back (the
    same code as the evaluation's, so the two cannot disagree; nothing leaves
    it: hooks are sent only after a commit)."""
    try:
        with ctx.write() as tx:
            raise _Judged(_evaluate_in(tx, model_name, env))
    except _Judged as judged:
        return sorted({r["version"] for r in judged.out["open_retrain_requests"]})


def _evaluate_in(tx: Tx, model_name: str, env: str) -> dict[str, Any]:
    actor = tx.ctx.require_actor()
    require_role(tx.conn, actor, roles.MONITORS, "evaluate monitoring triggers")
    model = registry.model_row(tx.conn, model_name)
    policy = effective_for(tx.conn, model)
    rules = policy.environment(env)
    s = _serving(tx.conn, model, env)
    triggers = policy.policy.monitoring.triggers
    windows = tx.conn.execute(
        select(WINDOWS.c.id, WINDOWS.c.summary, WINDOWS.c.deployment_id, WINDOWS.c.created_at)
        .where(WINDOWS.c.model_id == model.id, WINDOWS.c.environment == env)
        .order_by(WINDOWS.c.id)
    ).all()
    rows = _version_rows(tx.conn, model, [s.primary])
    primary_id = rows[s.primary].id
    fired: list[dict[str, Any]] = []
    earlier = tx.conn.execute(
        select(ALERTS.c.kind, ALERTS.c.windows, ALERTS.c.status).where(
            ALERTS.c.model_id == model.id,
            ALERTS.c.version_id == primary_id,
            ALERTS.c.environment == env,
        )
    ).all()

    def covered(kind: str, ids: list[int]) -> bool:
        return any(a.kind == kind and set(a.windows) & set(ids) for a in earlier)

    checks = []
    if triggers.performance is not None:
        p = triggers.performance
        checks.append(("performance", p.windows, _performance_breach(p), p))
    if triggers.drift is not None:
        d = triggers.drift
        checks.append(("drift", d.windows, _drift_breach(d.share), d))
    for kind, need, breach, spec in checks:
        run = _streak(windows, s.primary, breach)
        if len(run) >= need and not covered(kind, run):
            last = next(w for w in windows if w.id == run[-1]).summary[str(s.primary)]
            detail = (
                "; ".join(spec.breaches(last))
                if kind == "performance"
                else f"drift_share {last['drift_share']:.2f} >= {spec.share:g}"
            )
            fired.append(
                _raise(
                    tx,
                    model,
                    env,
                    primary_id,
                    kind,
                    f"{model.name}:{s.primary} {kind}: {len(run)} window(s) in a row ({detail})",
                    run,
                    retrain=True,
                )
            )
    if triggers.age is not None:
        created = rows[s.primary].created_at
        age = clock.instant(tx.time) - clock.instant(created)
        open_age = any(a.kind == "age" and a.status == "open" for a in earlier)
        if age.days >= triggers.age.max_days and not open_age:
            fired.append(
                _raise(
                    tx,
                    model,
                    env,
                    primary_id,
                    "age",
                    f"{model.name}:{s.primary} is {age.days} days old "
                    f"(the policy retrains after {triggers.age.max_days})",
                    [],
                    retrain=True,
                )
            )
    actions = _canary(tx, model, env, rules, s, windows)
    open_requests = [r for r in _retrains(tx.conn, model) if r["status"] == "open"]
    tx.record(
        "monitor.evaluate",
        f"model:{model.name}",
        {
            "environment": env,
            "version": s.primary,
            "windows": len(windows),
            "alerts": [a["alert"] for a in fired],
            "deployment_actions": [a["action"] for a in actions],
        },
    )
    return {
        "model": model.name,
        "environment": env,
        "version": s.primary,
        "alerts": fired,
        "deployment_actions": actions,
        "open_retrain_requests": open_requests,
    }


def _raise(
    tx: Tx,
    model: Any,
    env: str,
    version_id: int,
    kind: str,
    message: str,
    window_ids: list[int],
    *,
    retrain: bool,
) -> dict[str, Any]:
    actor = tx.ctx.require_actor()
    aid = tx.insert(
        ALERTS,
        {
            "model_id": model.id,
            "environment": env,
            "version_id": version_id,
            "kind": kind,
            "status": "open",
            "message": message[:2000],
            "windows": window_ids,
            "created_at": tx.time,
            "created_by": actor,
            "closed_at": None,
            "closed_by": None,
        },
    )
    edges = [(("window", w), ("alert", aid), "fired") for w in window_ids]
    if not edges:
        edges = [(("version", version_id), ("alert", aid), "fired")]
    lineage.connect(tx, edges)
    rid = None
    if retrain:
        rid = tx.insert(
            RETRAINS,
            {
                "model_id": model.id,
                "alert_id": aid,
                "version_id": version_id,
                "status": "open",
                "candidate_id": None,
                "created_at": tx.time,
                "created_by": actor,
                "closed_at": None,
            },
        )
    tx.record(
        "alert.raise",
        f"model:{model.name}",
        {
            "alert": aid,
            "kind": kind,
            "message": message,
            "windows": window_ids,
            "retrain_request": rid,
        },
    )
    return {
        "alert": aid,
        "kind": kind,
        "message": message,
        "windows": window_ids,
        "retrain_request": rid,
    }


def _canary(
    tx: Tx, model: Any, env: str, rules: Any, s: Serving, windows: list[Any]
) -> list[dict[str, Any]]:
    """A canary's own windows since its last step: roll back on a breach of
    the policy's criteria, advance after enough healthy ones."""
    dep = s.deployment
    if dep is None or dep.strategy != "canary" or dep.status != dm.ACTIVE or s.candidate is None:
        return []
    mine = [
        w
        for w in windows
        if w.deployment_id == dep.id
        and w.created_at >= dep.updated_at
        and str(s.candidate) in w.summary
    ]
    if not mine:
        return []
    can_act = bool(
        active_roles(tx.conn, tx.ctx.require_actor()) & roles.DECISION_ROLES["deploy.rollback"]
    )
    last = mine[-1]
    problems = rules.auto_rollback.breaches(last.summary[str(s.candidate)])
    if problems:
        reason = f"auto-rollback: window #{last.id}: {'; '.join(problems)}"
        cand_id = _version_rows(tx.conn, model, [s.candidate])[s.candidate].id
        raised = tx.conn.execute(
            select(ALERTS.c.windows).where(
                ALERTS.c.version_id == cand_id, ALERTS.c.kind == "canary"
            )
        ).all()
        if not any(last.id in a.windows for a in raised):  # once per bad window
            _raise(tx, model, env, cand_id, "canary", reason, [last.id], retrain=False)
        if not can_act:
            return [{"action": "rollback-due", "reason": reason + " (needs a deployer)"}]
        deployments.act_in(tx, model.name, env, "rollback", reason=reason)
        return [{"action": "rollback", "reason": reason}]
    n = rules.auto_advance_windows
    if n and len(mine) >= n and can_act:
        reason = f"auto-advance: {n} healthy window(s) ({', '.join(f'#{w.id}' for w in mine[-n:])})"
        result = deployments.act_in(tx, model.name, env, "advance", reason=reason)
        return [{"action": "advance", "reason": reason, "shares": result["shares"]}]
    return []


def _retrain(
    ctx: Context,
    model_name: str,
    version: int,
    requests: list[dict[str, Any]],
    fitted: training.Fitted,
) -> dict[str, Any]:
    """Train, validate and request the next gate for the open retraining
    requests about one version."""
    from cmi_console.services import gates, training, validations

    base = f"{model_name}:{version}"
    numbers = ", ".join(f"#{r['request']}" for r in requests)
    trained = training.register_retrain(ctx, base, fitted)
    ref = f"{trained['model']}:{trained['version']}"
    resumed = trained["already_registered"]  # a retraining stopped half way: finish it
    with ctx.read() as conn:
        policy = effective_for(conn, registry.model_row(conn, model_name))
    gate = validations.next_gate(policy, trained["stage"])
    run = None
    if gate is not None:
        if gate[1] is not None:
            run = (resumed and validations.recorded(ctx, ref, gate[1])) or validations.validate(
                ctx, ref
            )
        asked = gates.latest_request(ctx, ref, gate[0]) if resumed else None
        if asked is None or asked["status"] != "open":
            comment = f"retrained for retraining request {numbers}"
            gates.request(ctx, ref, gate[0], comment=comment)
    with ctx.write() as tx:
        cand = registry.version_row(tx.conn, ref)
        for r in requests:
            tx.update(
                RETRAINS,
                r["request"],
                {"status": "trained", "candidate_id": cand.id, "closed_at": tx.time},
            )
        lineage.connect(
            tx, [(("alert", r["alert"]), ("version", cand.id), "retrained-as") for r in requests]
        )
        tx.record(
            "retrain.trained",
            f"version:{ref}",
            {"requests": [r["request"] for r in requests], "candidate": ref, "from": base},
        )
    return {
        "requests": [r["request"] for r in requests],
        "candidate": ref,
        "resumed": resumed,
        "validation": run["status"] if run else None,
        "requested": gate[0] if gate else None,
    }


# --- zombies -------------------------------------------------------------------


def zombies(ctx: Context) -> list[dict[str, Any]]:
    """Versions that serve (or mirror) somewhere but have had no monitoring
    window for the policy's zombie_days, have no owner, or whose every newer
    version is retired."""
    from cmi_console.services.identity import PRINCIPALS

    out = []
    now = clock.instant(ctx.clock())
    with ctx.read() as conn:
        # a fixed number of queries whatever the number of deployed models
        serving_by = deployments.serving_by_model(
            conn.execute(select(deployments.EVENTS).order_by(deployments.EVENTS.c.id))
        )
        # a subquery, not a list of ids: thousands of ids would pass the
        # drivers' limit on bound parameters
        deployed = select(deployments.EVENTS.c.model_id).distinct()
        models = conn.execute(
            select(registry.MODELS)
            .where(registry.MODELS.c.id.in_(deployed))
            .order_by(registry.MODELS.c.id)
        ).all()
        policies = effective_for_many(conn, models)
        enabled = {
            r.name
            for r in conn.execute(select(PRINCIPALS.c.name, PRINCIPALS.c.disabled))
            if not r.disabled
        }
        versions_of: dict[int, list[Any]] = {}
        for r in conn.execute(
            select(
                registry.VERSIONS.c.model_id,
                registry.VERSIONS.c.version,
                registry.VERSIONS.c.status,
            ).where(registry.VERSIONS.c.model_id.in_(deployed))
        ):
            versions_of.setdefault(r.model_id, []).append(r)
        last_seen: dict[tuple[int, str, int], str] = {}
        for w in conn.execute(
            select(
                WINDOWS.c.model_id, WINDOWS.c.environment, WINDOWS.c.versions, WINDOWS.c.created_at
            ).where(WINDOWS.c.model_id.in_(deployed))
        ):
            for v in w.versions:
                key = (w.model_id, w.environment, v)
                last_seen[key] = max(last_seen.get(key, ""), w.created_at)
        for m in models:
            serving = serving_by.get(m.id, [])
            days = policies[m.id].policy.monitoring.zombie_days
            versions = versions_of.get(m.id, [])
            for s in serving:
                for v in sorted({int(x) for x in [*s["shares"], *s["mirror"]]}):
                    reasons, flags = [], []
                    seen = last_seen.get((m.id, s["environment"], v))
                    since = seen or s["since"]
                    idle = (now - clock.instant(since)).days
                    if idle >= days:
                        what = f"last window {seen}" if seen else f"no window since {since}"
                        reasons.append(f"no monitoring for {idle} days ({what})")
                        flags.append("unmonitored")
                    if not m.owner or m.owner not in enabled:
                        reasons.append(
                            "no owner" if not m.owner else f"owner {m.owner} is disabled"
                        )
                        flags.append("ownerless")
                    newer = [r for r in versions if r.version > v]
                    if newer and all(r.status == registry.RETIRED for r in newer):
                        reasons.append("every newer version is retired")
                        flags.append("orphaned")
                    if reasons:
                        out.append(
                            {
                                "model": m.name,
                                "version": v,
                                "environment": s["environment"],
                                "traffic": s["shares"].get(str(v), 0),
                                "mirror": s["mirror"].get(str(v), 0),
                                "flags": flags,
                                "reasons": reasons,
                            }
                        )
    return out
