"""Merge back on a homecheff-like history: the customers come back, every write since stays."""

from __future__ import annotations

import pytest

from recovery_wizard.recovery import merge
from recovery_wizard.recovery.merge import MergeOptions
from recovery_wizard.redact import Secret
from tests.merge.conftest import Pair


async def test_plan_finds_what_was_lost_and_the_conflicts(homecheff: Pair) -> None:
    plan = await merge.plan_merge(homecheff.past, homecheff.live)
    users = plan.table("User")
    assert len(users.diff.deleted) == 20
    assert len(users.diff.added) == 3
    assert len(users.diff.changed) == 1  # the renamed admin: reported, not reverted by default
    assert users.revert == {}
    assert users.diff.past_only_columns == ("legacy_flag",)
    assert users.diff.live_only_columns == ("locale",)
    # Customer 7 signed up again with the same email: a conflict, left out, not an error.
    [clash] = [c for c in users.conflicts if c.kind == "unique"]
    assert clash.constraint == "User_email_key" and "cust7@example.nl" in clash.detail
    assert len(users.insert) == 19
    # Customer 7's past profile and invoice point to a row that does not come back.
    assert {c.kind for c in plan.table("profile").conflicts} == {"foreign-key"}
    assert len(plan.table("profile").insert) == 19
    assert len(plan.table("invoice").insert) == 19
    assert [s.table for s in plan.skipped] == [("public", "audit_log")]
    # FK order: parents first.
    order = [t.table[1] for t in plan.tables]
    assert order[0] == "User"
    text = plan.render()
    assert "$2b$10$secretcustomerhash" not in text and "****" in text
    assert "cust7@example.nl" in text and "audit_log: left alone" in text
    assert "secretcustomerhash" not in str(plan.to_dict())


async def test_merge_brings_customers_back_and_keeps_every_write_since(homecheff: Pair) -> None:
    plan = await merge.plan_merge(homecheff.past, homecheff.live)
    await merge.check_rights(homecheff.live, plan)
    result = await merge.apply_merge(homecheff.live, plan, "run-hc-1")
    assert result.inserted == {
        "public.User": 19,
        "public.profile": 19,
        "public.membership": len(plan.table("membership").insert),
        "public.invoice": 19,
    }
    check = await merge.verify_merge(homecheff.live, plan)
    assert check.ok, check.to_dict()
    # From outside the tool.
    emails = {r[0] for r in homecheff.live_sql('SELECT email FROM "User"')}
    assert {f"cust{i}@example.nl" for i in range(1, 21)} <= emails
    assert {"ops1@homecheff.nl", "ops2@homecheff.nl"} <= emails
    assert homecheff.live_sql("SELECT name FROM \"User\" WHERE email = 'cust7@example.nl'") == [
        ("Customer 7 again",)
    ]
    assert homecheff.live_sql("SELECT name FROM \"User\" WHERE email = 'founder1@homecheff.nl'") == [
        ("Sanne de Vries",)
    ]
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(24,)]
    # Sequences moved past the re-inserted ids: the app's next inserts do not collide.
    homecheff.live_sql("INSERT INTO \"User\" (email, name) VALUES ('next@example.nl', 'Next')")
    homecheff.live_sql("INSERT INTO invoice (user_id, cents) VALUES (1, 1)")
    # Membership of customers matches the past exactly, except customer 7's.
    past = set(homecheff.past_sql("SELECT user_id, club FROM membership"))
    live = set(homecheff.live_sql("SELECT user_id, club FROM membership"))
    assert past - live == {r for r in past if r[0] == 9}  # cust7 is id 9 (after two admins)
    # Applying the same run again is a no-op: the ledger says it committed.
    again = await merge.apply_merge(homecheff.live, plan, "run-hc-1")
    assert again.already_applied and again.inserted == result.inserted
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(25,)]
    assert (await merge.merged(homecheff.live, "run-hc-1")) is not None
    assert (await merge.merged(homecheff.live, "run-other")) is None


async def test_revert_changed_is_opt_in(homecheff: Pair) -> None:
    plan = await merge.plan_merge(homecheff.past, homecheff.live, MergeOptions(revert_changed=["User"]))
    assert len(plan.table("User").revert) == 1
    result = await merge.apply_merge(homecheff.live, plan, "run-hc-revert")
    assert result.reverted == {"public.User": 1}
    assert homecheff.live_sql("SELECT name FROM \"User\" WHERE email = 'founder1@homecheff.nl'") == [
        ("Sanne",)
    ]
    check = await merge.verify_merge(homecheff.live, plan)
    assert check.ok and check.to_dict()["tables"][0]["reverted"] == 1
    # Had the admin been renamed again after the merge, the check would say the revert is not there.
    homecheff.live_sql("UPDATE \"User\" SET name = 'Renamed again' WHERE email = 'founder1@homecheff.nl'")
    assert not (await merge.verify_merge(homecheff.live, plan)).ok


async def test_a_bad_rule_or_table_is_refused_before_anything(homecheff: Pair) -> None:
    with pytest.raises(merge.MergeError, match="not one of"):
        await merge.plan_merge(homecheff.past, homecheff.live, MergeOptions(rules={"User": "overwrite"}))
    with pytest.raises(merge.MergeError, match="nope"):
        await merge.plan_merge(homecheff.past, homecheff.live, MergeOptions(revert_changed=["nope"]))
    with pytest.raises(merge.MergeError, match="--tables names the table 'Users'"):
        await merge.plan_merge(homecheff.past, homecheff.live, MergeOptions(tables=["Users"]))
    only = await merge.plan_merge(
        homecheff.past, homecheff.live, MergeOptions(tables=["public.User", "profile"])
    )
    assert sorted(t.table[1] for t in only.tables) == ["User", "profile"]


async def test_a_write_between_plan_and_apply_is_refused_then_a_new_plan_applies(homecheff: Pair) -> None:
    plan = await merge.plan_merge(homecheff.past, homecheff.live)
    # Customer 3 signs up again after the review: the plan's row would now collide.
    homecheff.live_sql("INSERT INTO \"User\" (email, name) VALUES ('cust3@example.nl', 'Three again')")
    with pytest.raises(merge.MergeChangedError, match="conflict"):
        await merge.apply_merge(homecheff.live, plan, "run-hc-race")
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(6,)]  # nothing written
    assert (await merge.merged(homecheff.live, "run-hc-race")) is None
    fresh = await merge.plan_merge(homecheff.past, homecheff.live)
    result = await merge.apply_merge(homecheff.live, fresh, "run-hc-race")
    assert result.inserted["public.User"] == 18


async def test_a_role_without_insert_rights_is_refused_naming_the_table(homecheff: Pair) -> None:
    import secrets

    role = f"rwmerge_ro_{secrets.token_hex(3)}"
    homecheff.live_sql(f"CREATE ROLE {role} LOGIN")
    try:
        homecheff.live_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        homecheff.live_sql(f'GRANT INSERT ON "User", membership, invoice TO {role}')
        from psycopg.conninfo import make_conninfo

        url = Secret(make_conninfo(homecheff.server.dsn(homecheff.live_db), user=role, password=None))
        plan = await merge.plan_merge(homecheff.past, url)
        with pytest.raises(merge.MergeRefusedError, match=r"INSERT on public\.profile") as refused:
            await merge.check_rights(url, plan)
        assert "GRANT" in refused.value.hint
        with pytest.raises(merge.MergeRefusedError):
            await merge.apply_merge(url, plan, "run-ro")
        assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(5,)]
    finally:
        homecheff.live_sql(f"DROP OWNED BY {role}")
        homecheff.live_sql(f"DROP ROLE {role}")
