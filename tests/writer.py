"""A separate process that makes audited writes as fast as it can.

python writer.py HOME DB|- PREFIX COUNT [ACTOR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from cmi_console.services import registry
from cmi_console.services.context import Context


def main() -> None:
    home, db, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    actor = sys.argv[5] if len(sys.argv) > 5 else "root"
    ctx = Context.open(Path(home), None if db == "-" else db, actor)
    print("ready", flush=True)
    for i in range(count):
        registry.create_model(ctx, f"{prefix}-{i}")


if __name__ == "__main__":
    main()
