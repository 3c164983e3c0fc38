"""The registry rebuilt from logged changes (core.replay), including the
changes a forged entry may carry."""

from __future__ import annotations

from typing import Any

from cmi_console.core.replay import RegistryState

SHAPE = "a change is not an object with an integer id and an object row"


class Recording(RegistryState):
    def __init__(self) -> None:
        super().__init__(["models"])
        self.calls: list[tuple[str, str, int, dict[str, Any]]] = []

    def changed(self, table: str, op: str, rid: int, row: dict[str, Any]) -> None:
        self.calls.append((table, op, rid, dict(row)))


def test_insert_update_delete_build_the_rows_and_tell_the_hook() -> None:
    st = Recording()
    assert st.apply([{"t": "models", "op": "insert", "id": 1, "row": {"name": "a", "x": 1}}]) == []
    assert st.apply([{"t": "models", "op": "update", "id": 1, "row": {"name": "b"}}]) == []
    assert st.tables["models"] == {1: {"id": 1, "name": "b", "x": 1}}
    assert st.apply([{"t": "models", "op": "delete", "id": 1}]) == []
    assert st.tables["models"] == {}
    assert st.calls == [
        ("models", "insert", 1, {"id": 1, "name": "a", "x": 1}),
        ("models", "update", 1, {"id": 1, "name": "b", "x": 1}),
        ("models", "delete", 1, {"id": 1, "name": "b", "x": 1}),
    ]


def test_every_bad_change_is_named_and_the_rest_still_applies() -> None:
    st = Recording()
    st.apply([{"t": "models", "op": "insert", "id": 1, "row": {"name": "a"}}])
    problems = st.apply(
        [
            {"t": "models", "op": "insert", "id": 1, "row": {"name": "c"}},
            {"t": "models", "op": "update", "id": 9, "row": {}},
            {"t": "models", "op": "delete", "id": 9},
            {"t": "nope", "op": "insert", "id": 2, "row": {}},
            {"t": "models", "op": "merge", "id": 1, "row": {}},
            {"t": "models", "op": "insert", "id": "1", "row": {}},
            {"t": "models", "op": "insert", "id": 3, "row": None},
            [1],
            {"t": "models", "op": "insert", "id": 4, "row": {"name": "d"}},
        ]
    )
    assert problems == [
        "models row 1 inserted twice",
        "models row 9 changed before insert",
        "models row 9 changed before insert",
        "unknown table 'nope'",
        "unknown operation 'merge'",
        SHAPE,
        SHAPE,
        SHAPE,
    ]
    # a second insert overwrites, as the table would hold the later row
    assert st.tables["models"] == {1: {"id": 1, "name": "c"}, 4: {"id": 4, "name": "d"}}
    assert st.apply("nope") == ["changes is not a list"]  # type: ignore[arg-type]


SHAPES: list[Any] = [None, [], {}, "x", -1, 2**70, 1.5, [[]], {"a": {}}, True]


def test_any_json_in_any_field_of_a_change_is_a_problem_or_applies_never_a_crash() -> None:
    # a forged table name that is a list or an object was a dict lookup that raised
    good = {"t": "models", "op": "insert", "id": 1, "row": {"name": "a"}}
    for field in [*good, "extra"]:
        for shape in SHAPES:
            for op in ("insert", "update", "delete"):
                st = Recording()
                change = {**good, "op": op, field: shape}
                problems = st.apply([change]) + st.apply([{**change, "op": "update"}])
                assert all(isinstance(p, str) for p in problems)
    assert Recording().apply([{**good, "t": ["models"]}]) == ["unknown table ['models']"]


def test_a_table_outside_keep_is_not_replayed_and_the_kept_ones_are_as_strict() -> None:
    # `registry as-of` replays four tables and reads only the entries that
    # change them: a change to another table may come without the change
    # before it, so it must not count as a problem, nor be held
    changes = [
        [{"t": "version_tags", "op": "update", "id": 7, "row": {"value": "y"}}],
        [{"t": "version_tags", "op": "delete", "id": 8}],
        [{"t": "version_tags", "op": "insert", "id": 1, "row": {"key": "a"}}],
        [{"t": "version_tags", "op": "insert", "id": 1, "row": {"key": "b"}}],
        [{"t": "models", "op": "insert", "id": 1, "row": {"name": "m"}}],
        [{"t": "models", "op": "update", "id": 1, "row": {"name": "n"}}],
        [{"t": "models", "op": "insert", "id": 1, "row": {"name": "o"}}],
        [{"t": "models", "op": "update", "id": 2, "row": {}}],
        [{"t": "nope", "op": "insert", "id": 1, "row": {}}],
        [{"t": "version_tags", "op": "merge", "id": 1, "row": {}}],
        [{"t": "version_tags", "op": "insert", "id": "1", "row": {}}],
    ]
    partial = RegistryState(["models", "version_tags"], keep=["models"])
    assert [partial.apply(c) for c in changes] == [
        [],
        [],
        [],
        [],
        [],
        [],
        ["models row 1 inserted twice"],
        ["models row 2 changed before insert"],
        ["unknown table 'nope'"],
        ["unknown operation 'merge'"],
        [SHAPE],
    ]
    assert partial.tables["models"] == {1: {"id": 1, "name": "o"}}
    assert dict(partial.tables["version_tags"]) == {}
    full = RegistryState(["models", "version_tags"])
    assert [full.apply(c) for c in changes[:4]] == [
        ["version_tags row 7 changed before insert"],
        ["version_tags row 8 changed before insert"],
        [],
        ["version_tags row 1 inserted twice"],
    ]
