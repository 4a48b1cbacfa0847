"""After a load: does the new branch hold the rows the FILE says it holds? (Not the damaged branch's counts.)

Expected counts, most exact first: what the load itself counted (the JSON rows inserted, the ``COPY`` rows of
a SQL file), else the manifest beside an archive. A JSON backup that is partial (``stats`` says more than
the file holds) is checked against the rows the file holds; the shortfall is already in
``LoadResult.partial``. An archive without a manifest says no counts: nothing to compare, and ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from recovery_wizard.recovery.files.detect import BackupInfo
from recovery_wizard.recovery.files.load import LoadResult
from recovery_wizard.redact import Secret


@dataclass(frozen=True)
class CountCheck:
    table: str
    expected: int
    actual: int | None  # None: the table is not there
    source: str  # "loaded rows" or "manifest"

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


def expected_counts(info: BackupInfo, result: LoadResult) -> dict[str, tuple[int, str]]:
    loaded = {t: n for t, n in result.tables.items() if isinstance(n, int)}
    if loaded:
        return {t: (n, "loaded rows") for t, n in loaded.items()}
    return {t: (n, "manifest") for t, n in info.tables.items() if isinstance(n, int)}


def _split(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", name)


async def check_counts(info: BackupInfo, result: LoadResult, target_direct_url: Secret) -> list[CountCheck]:
    """Exact ``count(*)`` of each table the file gives a count for, on the new branch, read-only."""
    import psycopg
    from psycopg import sql

    expected = expected_counts(info, result)
    checks: list[CountCheck] = []
    if not expected:
        return checks
    async with await psycopg.AsyncConnection.connect(target_direct_url.reveal(), connect_timeout=15) as conn:
        await conn.set_read_only(True)
        for name, (count, source) in sorted(expected.items()):
            schema, table = _split(name)
            exists = await (
                await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{schema}"."{table}"'])
            ).fetchone()
            actual: int | None = None
            if exists and exists[0]:
                query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                row = await (await conn.execute(query)).fetchone()
                actual = int(row[0]) if row else None
            checks.append(CountCheck(name, count, actual, source))
    return checks
