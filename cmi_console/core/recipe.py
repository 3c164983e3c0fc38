"""Training recipes: what to train, on which data, with which seed.

A recipe is a TOML file (docs/ci.md). Errors name the file and the key path,
like policies; unknown keys are errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cmi_console.core import seeds
from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.credentials import credential_in
from cmi_console.core.errors import BadInput
from cmi_console.core.names import repeated
from cmi_console.core.policy import key_path, read_toml

# Estimators a recipe may name: scikit-learn classes only, so a recipe can
# never make the trainer import arbitrary code.
ESTIMATORS: dict[str, Literal["classification", "regression"]] = {
    "sklearn.linear_model.LogisticRegression": "classification",
    "sklearn.linear_model.Ridge": "regression",
    "sklearn.linear_model.LinearRegression": "regression",
    "sklearn.ensemble.GradientBoostingClassifier": "classification",
    "sklearn.ensemble.GradientBoostingRegressor": "regression",
    "sklearn.ensemble.RandomForestClassifier": "classification",
    "sklearn.ensemble.RandomForestRegressor": "regression",
    "sklearn.ensemble.HistGradientBoostingClassifier": "classification",
    "sklearn.ensemble.HistGradientBoostingRegressor": "regression",
    "sklearn.tree.DecisionTreeClassifier": "classification",
    "sklearn.tree.DecisionTreeRegressor": "regression",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Data(_Strict):
    file: str
    name: str | None = None  # dataset name in the registry (default: the file's stem)
    target: str
    features: list[str] | None = None  # default: every column but target and sensitive
    sensitive: list[str] = Field(default_factory=list)


class Split(_Strict):
    holdout: float | None = Field(default=0.25, gt=0, lt=1)
    file: str | None = None  # a separate holdout file instead of a random split
    stratify: bool = True

    @model_validator(mode="after")
    def _one_way(self) -> Split:
        if self.file is not None and self.holdout not in (None, 0.25):
            raise ValueError("give holdout or file, not both")
        return self


class Estimator(_Strict):
    class_: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("class_")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in ESTIMATORS:
            raise ValueError(f"'{value}' is not an allowed estimator")
        return value


class Recipe(_Strict):
    format: Literal[1] = 1
    model: str
    description: str = ""
    seed: int = Field(default=0, ge=0, le=seeds.MAX)
    data: Data
    split: Split = Field(default_factory=Split)
    estimator: Estimator

    @property
    def task(self) -> str:
        return ESTIMATORS[self.estimator.class_]


def sha256_of(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def parse(raw: dict[str, Any], label: str, *, strict: bool = False) -> Recipe:
    """`strict` for a recipe file (TOML types kept: lax validation took
    `stratify = "no"` as false and `seed = true` as 1); a recipe a run
    recorded reads back as it was."""
    try:
        return Recipe.model_validate(raw, strict=strict)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple("class" if p == "class_" else p for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
        if err["type"] == "missing":
            msg = "required key is missing"
        raise BadInput(f"{label}: {key_path(loc)}: {msg.removeprefix('Value error, ')}") from None


def load(path: Path) -> tuple[Recipe, dict[str, Any]]:
    raw = read_toml(path)
    recipe = parse(raw, str(path), strict=True)
    # the run records the recipe whole, in the log for good
    problem = _columns_problem(recipe.data) or credential_in(raw)
    if problem:
        raise BadInput(f"{path}: {problem}")
    if "random_state" in recipe.estimator.params:
        # the seed is every random step's: a random_state of its own had
        # trained the estimator with another seed than the run records
        raise BadInput(
            f"{path}: estimator.params.random_state: the recipe's seed sets it "
            f"(seed = {recipe.seed}); leave it out"
        )
    return recipe, raw


def _columns_problem(data: Data) -> str | None:
    """What is wrong with the columns a recipe names, before any data is read:
    a target among the features trained a model on its own label (accuracy
    1.0, registered), a feature named twice failed inside scikit-learn."""
    features = data.features if data.features is not None else []
    if data.features is not None and not features:
        return "data.features: empty; leave it out for every column but the target and sensitive"
    for key, names in (("features", features), ("sensitive", data.sensitive)):
        if data.target in names:
            return f"data.{key}: '{data.target}' is the target"
        twice = repeated(names)
        if twice is not None:
            return f"data.{key}: '{twice[1]}' given twice"
    for name in data.sensitive:
        if name in features:
            return (
                f"data.sensitive: '{name}' is also in data.features; a sensitive column "
                "is kept out of the features"
            )
    return None


def resolve(base: Path, file: str, root: Path, where: str) -> Path:
    """A data path in a recipe: relative to the recipe, and inside `root` (the
    recipe's git repository, or its directory), so `..` cannot reach out."""
    candidate = Path(file)
    if candidate.is_absolute():
        raise BadInput(f"{where}: must be relative to the recipe, not {file!r}")
    resolved = (base / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BadInput(f"{where}: {file!r} leads outside {root}")
    if not resolved.is_file():
        raise BadInput(f"{where}: {resolved}: no such file")
    return resolved


def recorded(params: Any) -> tuple[str | None, str | None]:
    """The recipe hash and the estimator class that a training run's params
    record, as `cmi train` writes them; None for either where a run recorded
    by hand (`cmi run record --params` takes any object) holds something
    else, so no view of the run can trip on it."""
    params = params if isinstance(params, dict) else {}
    sha = params.get("recipe_sha256")
    recipe = params.get("recipe")
    estimator = recipe.get("estimator") if isinstance(recipe, dict) else None
    cls = estimator.get("class") if isinstance(estimator, dict) else None
    return (sha if isinstance(sha, str) else None, cls if isinstance(cls, str) else None)
