"""The demo workspace: real models from data/, deterministic, and it verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmi_console.services import demo


@pytest.mark.slow
def test_demo_builds_verifies_and_is_deterministic(tmp_path: Path) -> None:
    a = demo.ensure_demo(tmp_path / "a")
    b = demo.ensure_demo(tmp_path / "b")
    assert a.built and b.built and a.verified
    assert len(a.models) >= 3 and all(m["versions"] >= 2 for m in a.models)
    assert a.users >= 8
    heads = []
    for home in (tmp_path / "a", tmp_path / "b"):
        from cmi_console.services import audit
        from cmi_console.services.context import Context

        heads.append(audit.head(Context.open(home)))
    assert heads[0] == heads[1]  # the same log, byte for byte
    again = demo.ensure_demo(tmp_path / "a")
    assert not again.built and again.entries == a.entries


def test_demo_reset_refuses_a_real_workspace(tmp_path: Path) -> None:
    from cmi_console.core.errors import BadInput
    from cmi_console.services.setup import init_workspace

    init_workspace(tmp_path / "real", admin="root").engine.dispose()
    with pytest.raises(BadInput, match="not a demo workspace"):
        demo.ensure_demo(tmp_path / "real", reset=True)
    assert (tmp_path / "real" / "cmi.db").exists()
