"""The software environment a run records (DESIGN.md invariant 10)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "cmi-console")


def describe(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python and package versions, read from metadata (nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
