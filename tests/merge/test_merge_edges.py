"""Tables the merge must leave alone or handle with care: no key, nothing in common, cycles, checks, scale."""

from __future__ import annotations

import random

import pytest

from recovery_wizard.recovery import merge
from recovery_wizard.recovery.merge.diff import LEAF_ROWS, ROWS_PER_BUCKET_AT_START
from tests.merge.conftest import Pair


async def test_tables_without_key_or_common_columns_are_listed_and_left_alone(pair: Pair) -> None:
    pair.past_sql(
        "CREATE TABLE nokey (a int, b text); INSERT INTO nokey VALUES (1, 'x'), (2, 'y');"
        "CREATE TABLE renamed (id int PRIMARY KEY, v text); INSERT INTO renamed VALUES (1, 'a');"
        "CREATE TABLE uniq (code text NOT NULL UNIQUE, v int); INSERT INTO uniq VALUES ('a', 1), ('b', 2);"
        "CREATE TABLE gone (id int PRIMARY KEY); INSERT INTO gone VALUES (1);"
    )
    pair.branch()
    pair.live_sql(
        "DELETE FROM nokey; DROP TABLE renamed; CREATE TABLE renamed (ident int PRIMARY KEY, value text);"
        "DELETE FROM uniq WHERE code = 'b'; DROP TABLE gone;"
    )
    plan = await merge.plan_merge(pair.past, pair.live)
    reasons = {s.table[1]: s.reason for s in plan.skipped}
    assert "no primary key and no unique not-null key" in reasons["nokey"]
    assert "no column is common" in reasons["renamed"]
    assert "gone from the live branch" in reasons["gone"]
    # A unique not-null key stands in for a primary key.
    uniq = plan.table("uniq")
    assert uniq.diff.key_kind == "unique key" and list(uniq.insert) == [("b",)]
    result = await merge.apply_merge(pair.live, plan, "run-edges")
    assert result.inserted == {"public.uniq": 1}
    assert pair.live_sql("SELECT count(*) FROM nokey") == [(0,)]


async def test_a_check_gained_since_and_a_not_null_gained_since_are_conflicts(pair: Pair) -> None:
    pair.past_sql(
        "CREATE TABLE item (id int PRIMARY KEY, name text, price int);"
        "INSERT INTO item VALUES (1, 'soup', 5), (2, 'a very long name for a dish', 7), (3, NULL, 9), (4, 'pie', 3);"
    )
    pair.branch()
    pair.live_sql(
        "DELETE FROM item; ALTER TABLE item ADD CONSTRAINT short_name CHECK (length(name) < 10);"
        "ALTER TABLE item ALTER COLUMN name SET NOT NULL;"
    )
    plan = await merge.plan_merge(pair.past, pair.live)
    item = plan.table("item")
    kinds = {c.key: c.kind for c in item.conflicts}
    assert kinds == {("2",): "check", ("3",): "not-null"}
    assert sorted(item.insert) == [("1",), ("4",)]
    await merge.apply_merge(pair.live, plan, "run-check")
    assert pair.live_sql("SELECT id FROM item ORDER BY id") == [(1,), (4,)]


@pytest.mark.parametrize("deferrable", [True, False])
async def test_tables_referencing_each_other_are_inserted_whole(pair: Pair, deferrable: bool) -> None:
    mode = "DEFERRABLE" if deferrable else "NOT DEFERRABLE"
    pair.past_sql(
        "CREATE TABLE a (id int PRIMARY KEY, b_id int);"
        "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a(id));"
        f"ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b(id) {mode};"
        "CREATE TABLE node (id int PRIMARY KEY, parent int REFERENCES node(id));"
        "INSERT INTO a VALUES (1, NULL), (2, NULL); INSERT INTO b VALUES (10, 1), (20, 2);"
        "UPDATE a SET b_id = id * 10;"
        "INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2), (4, 3);"
    )
    pair.branch()
    pair.live_sql("UPDATE a SET b_id = NULL; DELETE FROM b; DELETE FROM a; DELETE FROM node WHERE id > 1")
    plan = await merge.plan_merge(pair.past, pair.live)
    assert plan.conflicts == []
    await merge.apply_merge(pair.live, plan, f"run-cycle-{deferrable}")
    assert pair.live_sql("SELECT id, b_id FROM a ORDER BY id") == [(1, 10), (2, 20)]
    assert pair.live_sql("SELECT id, a_id FROM b ORDER BY id") == [(10, 1), (20, 2)]
    assert pair.live_sql("SELECT count(*) FROM node") == [(4,)]


async def test_the_diff_drills_down_and_matches_the_truth_on_a_composite_key(pair: Pair) -> None:
    n = 30_000
    pair.past_sql(
        "CREATE TABLE ev (tenant int, seq int, body text, at timestamptz, PRIMARY KEY (tenant, seq));"
        f"INSERT INTO ev SELECT g % 7, g, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 s' "
        f"FROM generate_series(1, {n}) g; ANALYZE ev;"
    )
    pair.branch()
    rng = random.Random(14)
    deleted = set(rng.sample(range(1, n + 1), 120))
    changed = set(rng.sample(sorted(set(range(1, n + 1)) - deleted), 40))
    pair.live_sql("DELETE FROM ev WHERE seq = ANY(%s)", (sorted(deleted),))
    pair.live_sql("UPDATE ev SET body = body || '!' WHERE seq = ANY(%s)", (sorted(changed),))
    pair.live_sql("INSERT INTO ev SELECT 99, g, 'new', now() FROM generate_series(1, 15) g")
    plan = await merge.plan_merge(pair.past, pair.live)
    d = plan.table("ev").diff
    assert {int(k[1]) for k in d.deleted} == deleted
    assert {int(k[1]) for k in d.changed} == changed
    assert {k[0] for k in d.added} == {"99"} and len(d.added) == 15
    assert d.levels >= 2  # it recursed rather than fetching every key
    assert d.past_rows == n and d.live_rows == n - 120 + 15
    # Kilobytes, not the table: far less than the keys alone of every row on both sides.
    assert plan.diff.bytes_fetched < n * 2 * 16 / 4
    assert n / (ROWS_PER_BUCKET_AT_START * 16) > LEAF_ROWS  # the sizes above do exercise a middle level


async def test_text_values_survive_branches_with_different_session_defaults(pair: Pair) -> None:
    # A timestamptz key and a date column, with the two databases set to different time zones and date
    # styles: keys must still match and the re-inserted values must be the same instants and days.
    pair.past_sql(
        "CREATE TABLE slot (at timestamptz PRIMARY KEY, day date, amount float8);"
        "INSERT INTO slot VALUES ('2026-03-29 00:30:00+00', '2026-03-29', 0.1), "
        "('2026-10-25 01:30:00+00', '2026-10-25', 1e-20), ('2026-06-01 12:00:00+00', '2026-06-01', 2.5)"
    )
    pair.branch()
    pair.run(pair.past_db, f"ALTER DATABASE \"{pair.past_db}\" SET TimeZone = 'Pacific/Chatham'")
    pair.run(pair.past_db, f"ALTER DATABASE \"{pair.past_db}\" SET DateStyle = 'SQL, DMY'")
    pair.run(pair.live_db, f"ALTER DATABASE \"{pair.live_db}\" SET TimeZone = 'America/New_York'")
    pair.run(pair.live_db, f"ALTER DATABASE \"{pair.live_db}\" SET DateStyle = 'German'")
    pair.live_sql("DELETE FROM slot WHERE amount < 1")
    plan = await merge.plan_merge(pair.past, pair.live)
    assert len(plan.table("slot").diff.deleted) == 2 and plan.table("slot").diff.changed == []
    await merge.apply_merge(pair.live, plan, "run-tz")
    same = "SELECT extract(epoch FROM at), to_char(day, 'YYYY-MM-DD'), amount FROM slot ORDER BY at"
    assert pair.past_sql(same) == pair.live_sql(same)


async def test_integer_keys_are_bucketed_by_range_and_a_cluster_of_deletes_costs_little(pair: Pair) -> None:
    n = 40_000
    pair.past_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, body text);"
        f"INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, {n}) g;"
        # Sparse keys: hash buckets, however few rows.
        "CREATE TABLE sparse (id bigint PRIMARY KEY, body text);"
        "INSERT INTO sparse SELECT g * 1000003, 'x' FROM generate_series(1, 500) g; ANALYZE;"
    )
    pair.branch()
    pair.live_sql("DELETE FROM orders WHERE id BETWEEN 10001 AND 12000")  # the oldest-but-one, in one stretch
    pair.live_sql("UPDATE orders SET body = 'changed' WHERE id IN (5, 39999)")
    pair.live_sql(f"INSERT INTO orders VALUES ({n + 1}, 'new'), ({n + 2}, 'new')")
    pair.live_sql("DELETE FROM sparse WHERE id = 7 * 1000003")
    plan = await merge.plan_merge(pair.past, pair.live)
    orders = plan.table("orders").diff
    assert orders.layout == "key ranges"
    assert [int(k[0]) for k in orders.deleted] == list(range(10001, 12001))
    assert sorted(int(k[0]) for k in orders.changed) == [5, 39999]
    assert [int(k[0]) for k in orders.added] == [n + 1, n + 2]
    sparse = plan.table("sparse").diff
    assert sparse.layout == "key hash" and [int(k[0]) for k in sparse.deleted] == [7 * 1000003]
    # 2,000 deleted rows in one stretch: about their keys' worth of bytes, not the table's.
    assert plan.diff.bytes_fetched < 2 * 2000 * 40
