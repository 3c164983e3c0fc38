"""What a suite validates: one model version, its artifact and its data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Evaluation:
    """What data checks compare: the training split (reference) and the holdout
    or a given file (current), with the recipe's columns."""

    reference: Any
    current: Any
    target: str
    features: list[str]
    sensitive: list[str]
    task: str

    def labels(self, frame: Any | None = None) -> Any:
        """The labels of `frame` (default: the current data), which checks that
        score the model need; a given file may come without them."""
        data = self.current if frame is None else frame
        if self.target not in data:
            raise ValueError(f"the data has no '{self.target}' column: no labels to score against")
        return data[self.target]


@dataclass
class Subject:
    model: str
    version: int
    artifact_sha256: str
    artifact_format: str
    # returns the artifact's bytes after checking them against artifact_sha256
    read_artifact: Callable[[], bytes]
    allow_pickle: bool = False
    seed: int = 0
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # builds the Evaluation on first use; None when the version has no recipe
    evaluation_source: Callable[[], Evaluation] | None = None
    # (ref, model) of the version holding a stage now, or None
    champion: Callable[[str], tuple[str, Any] | None] | None = None
    # retrains from the recorded recipe: {"artifact_match", "metrics_match", ...}
    reproduce: Callable[[], dict[str, Any]] | None = None
    _model: Any = field(default=None, repr=False)
    _evaluation: Evaluation | None = field(default=None, repr=False)

    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            if self.evaluation_source is None:
                raise ValueError(
                    f"{self.ref} was not trained from a recipe (cmi train): no data to check"
                )
            self._evaluation = self.evaluation_source()
        return self._evaluation

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def load_model(self) -> Any:
        """The estimator, loaded once, safely (store.model_files.loads)."""
        if self._model is None:
            from cmi_console.store.model_files import loads

            self._model = loads(
                self.read_artifact(),
                self.artifact_format,
                allow_pickle=self.allow_pickle,
                where=f"{self.ref} artifact {self.artifact_sha256[:12]}",
            )
        return self._model
