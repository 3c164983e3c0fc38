"""Training from a recipe, deterministically: the same recipe and data give
the same model bytes (store.model_files.dumps) and the same metrics."""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any

from cmi_console.core.errors import BadInput, first_line
from cmi_console.core.recipe import Recipe
from cmi_console.validation.evidence import kept_warnings


def feature_columns(recipe: Recipe, frame: Any, where: str = "recipe") -> list[str]:
    d = recipe.data
    missing = [c for c in [d.target, *d.sensitive, *(d.features or [])] if c not in frame.columns]
    if missing:
        raise BadInput(
            f"{where}: column(s) {', '.join(missing)} missing: the recipe's data section names them"
        )
    if d.features is not None:
        return list(d.features)
    return [c for c in frame.columns if c != d.target and c not in d.sensitive]


# scikit-learn's words for a parameter out of its range or of the wrong type
_INVALID = re.compile(r"The '([^']+)' parameter of \w+ (must be .+)\. Got (.+) instead\.")


def invalid_parameter(source: str, message: str) -> str:
    """scikit-learn's refusal of a parameter, in the recipe's terms: the file
    and the key path, as every other recipe error names them."""
    said = _INVALID.fullmatch(message)
    if said is None:
        return f"{source}: estimator.params: {message}"
    return f"{source}: estimator.params.{said[1]}: {said[2]}, not {said[3]}"


@dataclass
class Split:
    train: Any
    holdout: Any


def split(recipe: Recipe, frame: Any, holdout: Any | None = None, where: str = "data") -> Split:
    """The recipe's split: a separate holdout frame, or a seeded random split."""
    from sklearn.model_selection import train_test_split

    if holdout is not None:
        return Split(frame, holdout)
    y = frame[recipe.data.target]
    strat = y if recipe.task == "classification" and recipe.split.stratify else None
    try:
        train, test = train_test_split(
            frame, test_size=recipe.split.holdout, random_state=recipe.seed, stratify=strat
        )
    except ValueError as exc:  # too few rows, or a class too rare to stratify
        raise BadInput(
            f"{where}: {len(frame)} row(s) cannot be split for a {recipe.split.holdout:g} "
            f"holdout: {first_line(exc)}"
        ) from None
    return Split(train.sort_index(), test.sort_index())


def build(recipe: Recipe, X: Any, source: str = "recipe") -> Any:
    """The pipeline to fit; `source` names the recipe (its file) in an error."""
    from pandas.api.types import is_numeric_dtype
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    module, _, name = recipe.estimator.class_.rpartition(".")
    cls = getattr(importlib.import_module(module), name)  # allow-listed in core.recipe
    params = dict(recipe.estimator.params)
    known = cls().get_params()
    unknown = [p for p in params if p not in known]
    if unknown:  # the constructor's TypeError named neither the file nor the key
        raise BadInput(f"{source}: estimator.params.{unknown[0]}: {name} takes no such parameter")
    if "random_state" in known and "random_state" not in params:
        params["random_state"] = recipe.seed
    estimator = cls(**params)
    cats = [c for c in X.columns if not is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    parts: list[Any] = [("num", StandardScaler(), nums)]
    if cats:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), cats))
    return Pipeline([("prep", ColumnTransformer(parts)), ("model", estimator)])


CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier")
REGRESSION = ("rmse", "mae", "r2")


def metric(name: str, y: Any, pred: Any, proba: Any | None) -> float:
    """One metric as scikit-learn computes it; binary metrics use the positive
    class. ValueError if it is not applicable (brier on a multi-class model) or
    not defined on these rows: scikit-learn answers ROC AUC on labels of one
    class with NaN and a warning, and a NaN has no JSON form."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once, below
        value = _computed(name, y, pred, proba)
    if not math.isfinite(value):
        labels = {str(v) for v in getattr(y, "tolist", lambda: list(y))()}
        why = f" (every label is {labels.pop()})" if len(labels) == 1 else ""
        raise ValueError(f"{name} is not defined on these rows{why}")
    return value


def _computed(name: str, y: Any, pred: Any, proba: Any | None) -> float:
    from sklearn import metrics as skm

    binary = proba is not None and proba.shape[1] == 2
    avg = "binary" if binary else "macro"
    # scikit-learn's binary metrics take 1 as the positive class unless told:
    # with labels "no"/"yes" precision, recall, f1 and brier raised, and were
    # left out of every run's metrics without a word
    positive_named = binary and name in ("precision", "recall", "f1", "brier")
    pos = {"pos_label": _positive(y, pred)} if positive_named else {}
    if name == "accuracy":
        return float(skm.accuracy_score(y, pred))
    if name == "precision":
        return float(skm.precision_score(y, pred, average=avg, zero_division=0, **pos))
    if name == "recall":
        return float(skm.recall_score(y, pred, average=avg, zero_division=0, **pos))
    if name == "f1":
        return float(skm.f1_score(y, pred, average=avg, zero_division=0, **pos))
    if name == "roc_auc":
        if proba is None:
            raise ValueError("roc_auc needs predicted probabilities")
        if binary:
            return float(skm.roc_auc_score(y, proba[:, 1]))
        return float(skm.roc_auc_score(y, proba, multi_class="ovr"))
    if name == "log_loss":
        if proba is None:
            raise ValueError("log_loss needs predicted probabilities")
        return float(skm.log_loss(y, proba))
    if name == "brier":
        if not binary:
            raise ValueError("brier needs a binary classifier")
        return float(skm.brier_score_loss(y, proba[:, 1], **pos))
    if name == "rmse":
        return float(skm.root_mean_squared_error(y, pred))
    if name == "mae":
        return float(skm.mean_absolute_error(y, pred))
    if name == "r2":
        return float(skm.r2_score(y, pred))
    raise ValueError(f"unknown metric '{name}'")


def predictions(model: Any, X: Any, task: str) -> tuple[Any, Any | None]:
    pred = model.predict(X)
    proba = model.predict_proba(X) if task == "classification" else None
    return pred, proba


def _positive(y: Any, pred: Any) -> Any:
    """A binary classifier's positive class: the greater of its two classes,
    as its probabilities' second column is (scikit-learn orders classes so).
    With one class among labels and predictions alike, 1 where it is a
    number (scikit-learn's own default); text cannot say which it is."""
    import numpy as np

    present = np.unique(np.concatenate([np.asarray(y).ravel(), np.asarray(pred).ravel()]))
    if len(present) == 2:
        return present[1]
    if len(present) == 1 and isinstance(present[0], str):
        raise ValueError("one class among labels and predictions: which is positive is unknown")
    return 1


def all_metrics(task: str, y: Any, pred: Any, proba: Any | None) -> dict[str, float]:
    """Every metric that is defined on these rows; one that is not (see
    `metric`) is left out: a window of only good loans is no error."""
    names = CLASSIFICATION if task == "classification" else REGRESSION
    out = {}
    for name in names:
        try:
            out[name] = round(metric(name, y, pred, proba), 10)
        except ValueError:
            continue
    return out


@dataclass
class Trained:
    model: Any
    artifact: bytes
    metrics: dict[str, float]
    features: list[str]
    warnings: list[str]  # what the libraries said while it trained (validation.evidence)

    @property
    def artifact_hash(self) -> str:
        import hashlib

        return hashlib.sha256(self.artifact).hexdigest()


def fit(
    recipe: Recipe,
    frame: Any,
    holdout: Any | None = None,
    where: str = "recipe",
    source: str = "recipe",
) -> Trained:
    """`where` names the data in an error (the file, when there is one), and
    `source` the recipe."""
    from cmi_console.store.model_files import dumps

    features = feature_columns(recipe, frame, where)
    parts = split(recipe, frame, holdout, where)
    target = recipe.data.target
    model = build(recipe, parts.train[features], source)
    # a solver that did not converge is evidence about the model: recorded
    # with its run, never printed over the command's output
    with kept_warnings() as said:
        try:
            model.fit(parts.train[features], parts.train[target])
            pred, proba = predictions(model, parts.holdout[features], recipe.task)
        except (ValueError, TypeError) as exc:  # e.g. empty cells it takes no NaN for
            # scikit-learn checks its parameters only when it fits: a bad one
            # is the recipe's fault, not the data's
            if type(exc).__name__ == "InvalidParameterError":
                raise BadInput(invalid_parameter(source, first_line(exc))) from None
            raise BadInput(
                f"estimator {recipe.estimator.class_}: cannot train on this data: {first_line(exc)}"
            ) from None
    scores = all_metrics(recipe.task, parts.holdout[target], pred, proba)
    return Trained(model, dumps(model), scores, features, said)
