"""The libraries' warnings that are evidence about a model or its data.

numpy's overflow in a cast, scikit-learn's undefined metric or a solver that
did not converge say something about what was measured or trained, so they
are kept with the result (RuntimeWarning, UserWarning and its subclasses,
ConvergenceWarning among them). Warnings about code (deprecations,
FutureWarning) or about garbage collection (ResourceWarning, whenever it
runs) are not. None is printed: it would land over the CLI's one line or the
console's screen.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

MAX_KEPT = 5  # distinct warnings kept for one check, or one training


@contextmanager
def kept_warnings(limit: int = MAX_KEPT) -> Iterator[list[str]]:
    """Collect the evidence warnings raised inside the block: the list it gives
    holds, once the block ends, up to `limit` distinct ones, in order."""
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", RuntimeWarning)
        warnings.simplefilter("always", UserWarning)
        try:
            yield said
        finally:
            # the kinds are checked here too: the filters are the process's,
            # and another thread's catch_warnings (joblib's workers copy and
            # restore them) can leave others in place while the block runs,
            # so a finalizer's ResourceWarning (a connection collected while
            # open) was kept with a training run as if the model had said it
            distinct = dict.fromkeys(
                f"{w.category.__name__}: {w.message}"
                for w in caught
                if issubclass(w.category, (RuntimeWarning, UserWarning))
            )
            said.extend(list(distinct)[:limit])
