"""Checks, canaries and peeks: one SELECT that calls nothing a read-only transaction lets through."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.sqlguard import judge, require_read_only

# Each of these runs happily inside BEGIN READ ONLY and still does harm: ends or signals sessions, locks,
# changes settings, waits, reads server files, takes ids, notifies, runs SQL text elsewhere.
SIDE_EFFECTS = {
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'": "pg_terminate_backend",
    "SELECT count(pg_cancel_backend(pid)) >= 0 FROM pg_stat_activity": "pg_cancel_backend",
    "SELECT pg_catalog.pg_reload_conf()": "pg_catalog.pg_reload_conf",
    "SELECT pg_rotate_logfile()": "pg_rotate_logfile",
    "SELECT lo_import('/etc/passwd') > 0": "lo_import",
    "SELECT lo_unlink(1)": "lo_unlink",
    "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a text)": "dblink",
    "SELECT dblink_exec('host=x', 'DROP TABLE t') IS NOT NULL": "dblink_exec",
    "SELECT pg_advisory_lock(42) IS NULL": "pg_advisory_lock",
    "SELECT pg_try_advisory_xact_lock(1)": "pg_try_advisory_xact_lock",
    "SELECT set_config('default_transaction_read_only', 'off', false) = 'off'": "set_config",
    "SELECT pg_sleep(600) IS NULL": "pg_sleep",
    "SELECT true FROM pg_sleep_for('1 hour')": "pg_sleep_for",
    "SELECT length(pg_read_file('/etc/passwd')) > 0": "pg_read_file",
    "SELECT pg_read_binary_file('global/pg_control') IS NOT NULL": "pg_read_binary_file",
    "SELECT count(*) > 0 FROM pg_ls_dir('.')": "pg_ls_dir",
    "SELECT pg_switch_wal() IS NOT NULL": "pg_switch_wal",
    "SELECT pg_create_physical_replication_slot('x') IS NOT NULL": "pg_create_physical_replication_slot",
    "SELECT pg_create_logical_replication_slot('x', 'pgoutput') IS NOT NULL": "pg_create_logical_replication_slot",
    "SELECT nextval('orders_id_seq') > 0": "nextval",
    "SELECT setval('orders_id_seq', 1) = 1": "setval",
    "SELECT txid_current() > 0": "txid_current",
    "SELECT pg_notify('app', 'hello') IS NULL": "pg_notify",
    "SELECT pg_logical_emit_message(true, 'x', 'y') IS NOT NULL": "pg_logical_emit_message",
    "SELECT pg_stat_reset() IS NULL": "pg_stat_reset",
    "SELECT pg_stat_statements_reset() IS NULL": "pg_stat_statements_reset",
    "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, false, '') IS NOT NULL": "query_to_xml",
    "SELECT cron.schedule('* * * * *', 'DELETE FROM t') > 0": "cron.schedule",
    # Wherever the call sits: a subquery, a CTE, FROM, WHERE, GROUP BY, a FILTER, a quoted name.
    "SELECT (SELECT pg_terminate_backend(1))": "pg_terminate_backend",
    "WITH k AS (SELECT pg_terminate_backend(1)) SELECT * FROM k": "pg_terminate_backend",
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM t WHERE pg_cancel_backend(t.pid))": "pg_cancel_backend",
    "SELECT count(*) FROM t GROUP BY pg_reload_conf()": "pg_reload_conf",
    "SELECT count(*) FILTER (WHERE pg_advisory_lock(1) IS NULL) FROM t": "pg_advisory_lock",
    'SELECT "pg_terminate_backend"(1)': "pg_terminate_backend",
    "SELECT PG_SLEEP(1)": "pg_sleep",  # as PostgreSQL reads it
    "(SELECT 1) UNION ALL (SELECT pg_cancel_backend(1)::int)": "pg_cancel_backend",
}


@pytest.mark.parametrize("sql", list(SIDE_EFFECTS))
def test_a_read_only_select_with_side_effects_is_refused_naming_the_function(sql: str) -> None:
    refusal = judge(sql)
    assert refusal is not None
    assert f"{SIDE_EFFECTS[sql]}()" in refusal.reason
    with pytest.raises(UsageError) as refused:
        require_read_only(sql, what="check")
    assert refused.value.exit_code == 2
    assert SIDE_EFFECTS[sql] in str(refused.value)
    assert refused.value.hint  # what to write instead


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT count(*) >= 10 FROM "User"',
        "SELECT coalesce(max(id), 0) > 0, now(), date_trunc('day', now()) FROM orders",
        "SELECT count(*) FROM pg_stat_activity",
        "SELECT current_setting('server_version_num')::int >= 150000",
        "SELECT last_value > 0 FROM orders_id_seq",
        "SELECT 'pg_terminate_backend(1); pg_sleep(9)' <> ''",  # in a literal: not a call
        "SELECT $$ SELECT pg_sleep(9) $$ IS NOT NULL",
        "SELECT pg_terminate_backend FROM t",  # a column of that name is no call
        "SELECT password_reset_count FROM t",
        "SELECT jsonb_path_exists(data, '$.a') FROM t",
        "SELECT pg_size_pretty(pg_database_size(current_database())) IS NOT NULL",
        "; SELECT 1",
    ],
)
def test_ordinary_checks_pass(sql: str) -> None:
    assert judge(sql) is None


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("SELECT 1; SELECT 2", "2 statements"),
        ("DELETE FROM t", "a DELETE, not a SELECT"),
        ("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", "data-modifying"),
        ("SELECT * INTO x FROM t", "INTO"),
        ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "FOR UPDATE"),
        ("SELEC 1", "does not parse"),
        ("", "empty"),
        ("SHOW work_mem", "a SHOW"),
    ],
)
def test_refusals_say_what_is_wrong(sql: str, said: str) -> None:
    refusal = judge(sql)
    assert refusal is not None
    assert said in refusal.reason


DENIED_NAMES = sorted({name.split(".")[-1] for name in SIDE_EFFECTS.values() if name != "cron.schedule"})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(DENIED_NAMES),
    schema=st.sampled_from(["", "pg_catalog.", "public."]),
    upper=st.booleans(),
    shape=st.sampled_from(
        [
            "SELECT {f}(1)",
            "SELECT x FROM t WHERE {f}(x) IS NOT NULL",
            "SELECT (SELECT {f}(1)) IS NULL",
            "WITH a AS (SELECT {f}(1) AS v) SELECT v FROM a",
            "SELECT * FROM {f}(1) AS r",
            "SELECT coalesce({f}(1), 0) > 0",
            "SELECT CASE WHEN true THEN {f}(1) END",
            "SELECT array[{f}(1)]",
            "SELECT 1 ORDER BY {f}(1)",
        ]
    ),
)
def test_a_denied_call_is_found_wherever_it_sits(name: str, schema: str, upper: bool, shape: str) -> None:
    call = schema + (name.upper() if upper else name)
    refusal = judge(shape.format(f=call))
    assert refusal is not None
    assert call.casefold() in refusal.reason.casefold()
