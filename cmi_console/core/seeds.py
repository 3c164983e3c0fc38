"""Random seeds: the range that every library a run seeds accepts."""

from __future__ import annotations

# numpy's RandomState, scikit-learn's random_state and pandas' sample all take
# 0..2**32-1; a seed outside it failed deep inside a check or an estimator
MAX = 2**32 - 1


def seed_problem(seed: int) -> str | None:
    """What is wrong with a seed, if anything."""
    if not 0 <= seed <= MAX:
        return f"must be 0..{MAX}, not {seed}"
    return None
