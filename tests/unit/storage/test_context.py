"""storage.context.resolve and inherit_in_batch on their own: nearest ancestor, own values win,
missing parents and loops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from observatory_api.core.records import SpanRecord
from observatory_api.storage.context import Context, inherit_in_batch, resolve

NONE: Context = (None, None, None, [])


def test_nearest_ancestor_and_own_values() -> None:
    nodes = {
        "r": (None, ("u", "s", "e", ["t"])),
        "a": ("r", NONE),
        "b": ("a", ("u2", None, None, [])),
        "c": ("b", NONE),
        "orphan": ("missing", (None, "s9", None, [])),
    }
    resolved = resolve(nodes)
    assert resolved["a"] == ("u", "s", "e", ["t"])
    assert resolved["b"] == ("u2", "s", "e", ["t"])
    assert resolved["c"] == ("u2", "s", "e", ["t"])
    assert resolved["orphan"] == (None, "s9", None, [])


def test_a_loop_ends() -> None:
    nodes = {"x": ("y", ("u", None, None, [])), "y": ("x", NONE), "z": ("y", NONE)}
    resolved = resolve(nodes)  # which span of a loop is the ancestor is undefined; it must end
    assert resolved["x"][0] == "u"
    assert set(resolved) == {"x", "y", "z"}


def test_a_deep_chain_is_not_recursive() -> None:
    depth = 50_000  # far past Python's recursion limit
    nodes = {0: (None, ("u", None, None, []))} | {i: (i - 1, NONE) for i in range(1, depth)}
    assert resolve(nodes)[depth - 1][0] == "u"


def test_inherit_in_batch_leaves_complete_spans_alone() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def record(span_id: str, parent: str | None, **fields: object) -> SpanRecord:
        return SpanRecord(
            trace_id="a" * 32,
            span_id=span_id * 16,
            parent_span_id=parent * 16 if parent else None,
            service_name="svc",
            name=span_id,
            kind="chain",
            start_time=start,
            end_time=start + timedelta(seconds=1),
            duration_ms=1000.0,
            **fields,  # type: ignore[arg-type]
        )

    full = {"user_id": "u", "session_id": "s", "environment": "e", "tags": ["t"]}
    records = [record("c", "b"), record("b", "a", user_id="mine"), record("a", None, **full)]
    out = {r.span_id[0]: (r.user_id, r.session_id, r.environment, r.tags) for r in inherit_in_batch(records)}
    assert out == {"a": ("u", "s", "e", ["t"]), "b": ("mine", "s", "e", ["t"]), "c": ("mine", "s", "e", ["t"])}
    alone = [record("a", None, **full)]
    assert inherit_in_batch(alone) == alone
