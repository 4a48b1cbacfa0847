"""Property: for random tables and random delete/update/insert histories, merging back the deletes yields
exactly ``past ∪ added-since`` (live's version wherever live has the key), no live row lost or changed, and
every past row that is not back is one the plan named as a conflict (a unique value taken since)."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_wizard.recovery import merge
from tests.merge.conftest import Pair

_runs = itertools.count()

rows_st = st.dictionaries(
    st.integers(min_value=-50, max_value=200),
    st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h", None]), st.integers(-3, 3)),
    max_size=40,
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, tuple[str | None, int]], dict[int, tuple[str | None, int]]]:
    past = draw(rows_st)
    # Unique column u: keep the past consistent with its own constraint.
    seen: set[str] = set()
    for k in sorted(past):
        u, v = past[k]
        if u is not None and u in seen:
            past[k] = (None, v)
        elif u is not None:
            seen.add(u)
    live = dict(past)
    keys = sorted(past)
    for k in draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []:
        del live[k]
    for k in draw(st.lists(st.sampled_from(sorted(live)), unique=True)) if live else []:
        live[k] = (live[k][0], live[k][1] + 10)
    for k, (u, v) in draw(rows_st).items():
        if k in live:
            continue
        taken = {x[0] for x in live.values()}
        live[k] = (None if u in taken else u, v)  # a fresh key, or a deleted one signed up again
    return past, live


def _load(pair: Pair, db: str, rows: dict[int, tuple[str | None, int]], key_type: str) -> None:
    # int keys are bucketed by range when dense, by hash when sparse; text keys always by hash.
    pair.run(
        db,
        f"DROP TABLE IF EXISTS t; CREATE TABLE t (k {key_type} PRIMARY KEY, u text UNIQUE, v int NOT NULL)",
    )
    if rows:
        pair.run(
            db,
            f"INSERT INTO t SELECT * FROM unnest(%s::int[]::{key_type}[], %s::text[], %s::int[])",
            ([k for k in rows], [r[0] for r in rows.values()], [r[1] for r in rows.values()]),
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), key_type=st.sampled_from(["int", "text"]))
def test_merging_back_deletes_yields_past_union_added_since(
    pair: Pair,
    history: tuple[dict, dict],  # type: ignore[type-arg]
    key_type: str,
) -> None:
    past, live = history
    _load(pair, pair.past_db, past, key_type)
    _load(pair, pair.live_db, live, key_type)

    async def go() -> merge.MergePlan:
        plan = await merge.plan_merge(pair.past, pair.live)
        await merge.apply_merge(pair.live, plan, f"prop-{next(_runs)}")
        assert (await merge.verify_merge(pair.live, plan)).ok
        return plan

    plan = asyncio.run(go())
    final = {int(k): (u, v) for k, u, v in pair.live_sql("SELECT k, u, v FROM t")}
    conflicted = {int(c.key[0]) for c in plan.conflicts}
    live_u = {r[0] for r in live.values() if r[0] is not None}
    expected_conflicts = {k for k, (u, _) in past.items() if k not in live and u in live_u}
    assert conflicted == expected_conflicts
    expected = {**{k: r for k, r in past.items() if k not in conflicted}, **live}
    assert final == expected
