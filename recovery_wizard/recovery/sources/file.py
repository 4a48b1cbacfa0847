"""A backup file: a ``pg_dump`` archive, a SQL dump or a JSON backup of the team's own, loaded into a branch.

Materialized in two journalled parts inside the restore step:

1. a branch of the DAMAGED branch at its head (its roles, extensions and current schema are what the file's
   data goes into), marked with the run's annotation so a resumed run can prove it made it, with a
   read-write compute (the load writes);
2. the file loaded over that branch's DIRECT url with ``files.load`` (one transaction where the format
   allows: ``pg_restore --single-transaction``, ``psql -1``, the JSON loader's one transaction).

An interrupted load (``load`` begun, not done) is redone on a NEW copy of the branch: the one it ran on is
deleted first. Why not look inside: ``pg_restore --single-transaction`` cannot carry a marker of ours into
its transaction, so whether it committed just before the crash cannot be proven from outside; and a
``--clean`` load run twice over a committed one is not always the same as once (a JSON upsert is, a replace
of a partial table is not). The branch is provably this run's (its marker) and holds nothing but the copy
and the load, so deleting it loses nothing.

A failed load leaves the damaged branch untouched and the run failed: the restore branch is renamed
``<name>-failed`` (a drill's is deleted: a drill leaves nothing behind), never reported as done.

JSON backups load in ``auto`` mode (files/jsonbackup.py): the branch starts as a copy of the damaged branch
and exists to hold the file's data, so the file's rows win. A table the file holds completely ends up holding
exactly its rows; a partial table (the cron keeps only the last N orders: ``stats`` says more than the file
holds) is upserted by primary key and keeps its other rows, which ``replace`` could not do (the file's reviews
point at orders it no longer holds). A branch row colliding with a file row on another unique key (a
customer who signed up again with the same email, under a new id) is deleted on this NEW branch and said in
the load notes, the report and ``--json``; if another table the file lacks still references it, the load
stops naming that table. The verification asks each table for at least the file's rows and says which are
partial.

Neon's restore window does not apply: the file holds its own data, of any age.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from recovery_wizard.neon.errors import NeonError, NotFoundError
from recovery_wizard.neon.models import Branch, EndpointType
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.outcome import StepFailedError, UsageError
from recovery_wizard.recovery.sources.base import Made, Materialized, Source, ensure_endpoint, expiry_clause

if TYPE_CHECKING:
    from recovery_wizard.recovery.files.detect import BackupInfo
    from recovery_wizard.recovery.plan import Plan
    from recovery_wizard.recovery.runner import Runner, RunResult
    from recovery_wizard.redact import Secret

log = logging.getLogger("recovery_wizard.sources.file")

LATEST: Final = "latest"
JSON_MODE: Final = "auto"
FAILED_SUFFIX: Final = "-failed"
_CHUNK: Final = 1 << 20


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _sha256(path: Path) -> str | None:
    """The file's sha256 (None for a directory archive), read in chunks: memory stays flat at any size."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CountLine:
    """One table: the file's count against the loaded branch's."""

    table: str
    expected: int
    actual: int | None
    source: str  # "loaded rows", "manifest"
    at_least: bool  # an upsert keeps the branch's other rows: the file's rows are a lower bound
    partial: bool  # the file itself says it holds fewer rows than the table had

    @property
    def ok(self) -> bool:
        if self.actual is None:
            return False
        return self.actual >= self.expected if self.at_least else self.actual == self.expected

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "expected": self.expected,
            "actual": self.actual,
            "source": self.source,
            "at_least": self.at_least,
            "partial": self.partial,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class FileSource(Source):
    """One backup file, examined when the run was planned; the journal keeps all of this."""

    kind: ClassVar[str] = "file"
    previews_in_place: ClassVar[bool] = False

    path: str  # absolute
    file_kind: str  # custom | directory | tar | sql | json
    label: str
    taken_at: datetime
    taken_at_source: str
    size: int
    sha256: str | None
    asked_as: str = ""  # the text after ``file:`` (``latest`` or the path as given)
    manifest: str | None = None
    tables: dict[str, int | None] = field(default_factory=dict)
    partial: tuple[str, ...] = ()
    # A SQL dump with its schema: the schemas it creates tables in, emptied on the new branch before the
    # load (pg_restore's --clean does this for archives; plain SQL has no such switch).
    clean_schemas: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, info: BackupInfo, asked_as: str, sha256: str | None, clean_schemas: tuple[str, ...] = ()
    ) -> FileSource:
        assert info.taken_at is not None  # detect falls back to the file's mtime
        taken = info.taken_at if info.taken_at.tzinfo else info.taken_at.replace(tzinfo=UTC)
        return cls(
            path=str(info.path.resolve()),
            file_kind=info.kind,
            label=info.label,
            taken_at=taken.astimezone(UTC),
            taken_at_source=info.taken_at_source,
            size=info.size,
            sha256=sha256,
            asked_as=asked_as,
            manifest=str(info.manifest) if info.manifest else None,
            tables=dict(info.tables),
            partial=tuple(info.partial),
            clean_schemas=clean_schemas,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSource:
        taken = _time(data["taken_at"])
        assert taken is not None
        return cls(
            path=str(data["path"]),
            file_kind=str(data["file_kind"]),
            label=str(data.get("label") or data["file_kind"]),
            taken_at=taken,
            taken_at_source=str(data.get("taken_at_source") or ""),
            size=int(data.get("size") or 0),
            sha256=data.get("sha256"),
            asked_as=str(data.get("asked_as") or ""),
            manifest=data.get("manifest"),
            tables=dict(data.get("tables") or {}),
            partial=tuple(data.get("partial") or ()),
            clean_schemas=tuple(data.get("clean_schemas") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "file_kind": self.file_kind,
            "label": self.label,
            "taken_at": _iso(self.taken_at),
            "taken_at_source": self.taken_at_source,
            "size": self.size,
            "sha256": self.sha256,
            "asked_as": self.asked_as,
            "manifest": self.manifest,
            "tables": self.tables,
            "partial": list(self.partial),
            "clean_schemas": list(self.clean_schemas),
        }

    # --- describing itself ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return Path(self.path).name

    def describe(self, plan: Plan) -> str:
        return f"the backup file {self.name} ({self.label}), taken {plan.moment.describe()}"

    def why(self) -> str:
        return (
            "A backup file holds the data as it was when it was taken, past Neon's restore window. It is "
            "loaded into a new branch made from the damaged one (so its roles, extensions and schema are "
            "there), in one transaction, verified against the file's own counts and beside the damaged "
            "branch; the damaged branch is never written."
        )

    def record_lines(self, plan: Plan) -> list[str]:
        lines = [
            f"- **Source**: backup file `{self.path}` ({self.label}, {self.size} bytes)",
            f"- **Taken at**: {_iso(self.taken_at)} (from the {self.taken_at_source}"
            + (", a guess: the file says no time of its own" if self.taken_at_source == "file mtime" else "")
            + ")",
        ]
        if self.sha256:
            lines.append(f"- **sha256**: `{self.sha256}`")
        if self.manifest:
            lines.append(f"- **Manifest**: `{self.manifest}`")
        if self.asked_as == LATEST:
            lines.append("- **Chosen as**: `file:latest` (the newest backup in the backups directory)")
        for note in self.partial:
            lines.append(f"- **Partial in the file**: {note}")
        return lines

    def restore_lines(self, plan: Plan) -> list[str]:
        what = f"{self.name} ({self.label}, taken {plan.moment.describe()})"
        how = (
            f"in one transaction (JSON, {JSON_MODE} mode: tables the file holds completely are replaced, "
            "partial ones upserted by primary key, the file's row wins a unique-key collision)"
            if self.file_kind == "json"
            else "in one transaction"
        )
        branch = (
            f"the throwaway branch {plan.name!r}" + expiry_clause(plan, " ({})")
            if plan.command == "drill"
            else f"the new branch {plan.name!r}"
        )
        return [
            f"Create {branch} from {plan.branch.name!r} as it is now (its roles, extensions and schema), with "
            "a read-write compute; wait for Neon's operations.",
            f"Load {what} into it over its direct connection, {how}. {plan.branch.name!r} is not changed; "
            f"a failed load leaves {plan.name!r} marked failed.",
        ]

    def undo_in_place(self, result: RunResult) -> str:
        return "- (A backup file is never restored in place.)"

    # --- materialize: a branch at head, then the load -----------------------------------------------

    def begin_data(self, plan: Plan, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "parent_id": plan.branch.id,
            "file": self.path,
            "sha256": self.sha256,
            "expires_at": plan.expires_at,
        }

    async def make(self, run: Runner, name: str) -> Made:
        plan = run.plan
        created = await run.client.create_branch(
            run.project_id,
            parent_id=plan.branch.id,
            name=name,
            endpoints=[EndpointType.READ_WRITE],
            expires_at=plan.expires_at,
            annotation=ownership.marker(run.journal.run_id),
        )
        return Made(created.branch, list(created.endpoints), list(created.operations))

    async def why_not_ours(self, run: Runner, branch_id: str) -> tuple[Branch, list[str]]:
        branch, annotation = await run.client.branch_annotated(run.project_id, branch_id)
        begin = run.journal.last("restore", "begin")
        # Made at the damaged branch's head: no moment of its history to check.
        return branch, ownership.why_not_ours(
            branch,
            annotation,
            run_id=run.journal.run_id,
            parent_id=run.plan.branch.id,
            begun_at=begin.at if begin is not None else None,
        )

    async def materialize(
        self, run: Runner, name: str, *, read_write: bool, adopted: Branch | None = None
    ) -> Materialized:
        journal = run.journal
        made = Made(adopted, [], []) if adopted is not None else await self._make_or_adopt(run, name)
        loaded = journal.done("load")
        if loaded is not None and loaded.data.get("branch_id") == made.branch.id:
            endpoint_id = await ensure_endpoint(run, made, read_write=True)
            return Materialized(made.branch, endpoint_id, extra={"load": loaded.data.get("result")})
        interrupted = journal.begun_not_done("load")
        if interrupted is not None and interrupted.data.get("branch_id") == made.branch.id:
            # Whether the interrupted load committed cannot be proven from outside (see the module's
            # docstring): start again from a fresh copy of the damaged branch.
            run.reporter.warn(
                f"The load into {made.branch.name} was interrupted; it is done again on a fresh copy of "
                f"{run.plan.branch.name} (the interrupted one is deleted: this run made it)."
            )
            journal.append("step", "begin", "load-reset", branch_id=made.branch.id)
            await self._delete(run, made.branch)
            journal.append("step", "done", "load-reset", branch_id=made.branch.id)
            made = await self._make_or_adopt(run, name)
        endpoint_id = await ensure_endpoint(run, made, read_write=True)
        result = await self._load(run, made.branch, endpoint_id)
        return Materialized(made.branch, endpoint_id, extra={"load": result})

    async def _delete(self, run: Runner, branch: Branch) -> None:
        try:
            deleted = await run.client.delete_branch(run.project_id, branch.id)
        except NotFoundError:
            return
        if deleted is not None:
            await run.wait(deleted.operations, "restore")

    async def _load(self, run: Runner, branch: Branch, endpoint_id: str) -> dict[str, Any]:
        from recovery_wizard.recovery.files.detect import BackupFileError, detect
        from recovery_wizard.recovery.files.load import LoadError, LoadProgress, load

        plan, journal = run.plan, run.journal
        path = Path(self.path)
        try:
            info = detect(path)
            if self.sha256 is not None and _sha256(path) != self.sha256:
                raise BackupFileError(
                    f"{path} changed since the run was planned (its sha256 is not {self.sha256[:16]}…).",
                    hint="Start a new run with --new to restore the file as it is now.",
                )
        except BackupFileError as exc:
            raise StepFailedError("restore", str(exc), hint=exc.hint) from None
        url = await run.direct_uri(branch.id, endpoint_id)

        def progress(p: LoadProgress) -> None:
            tables = f"{p.tables_done}/{p.tables_total} tables" if p.tables_total else "reading"
            done = f"{p.bytes_read / 1e6:.1f}/{p.bytes_total / 1e6:.1f} MB" if p.bytes_total else ""
            now = f", {p.current}" if p.current else ""
            run.reporter.progress(f"Loading {path.name}: {tables}, {done}{now}")

        journal.append("step", "begin", "load", branch_id=branch.id, file=self.path, sha256=self.sha256)
        run.reporter.info(f"Loading {path.name} into {branch.name} ({self.label})…")
        prisma_schema = _prisma_schema(run)
        try:
            if self.file_kind == "sql" and self.clean_schemas:
                await _empty_schemas(url, self.clean_schemas)
                run.reporter.info(
                    f"Emptied the schema(s) {', '.join(self.clean_schemas)} on {branch.name}: the dump "
                    "creates its tables there."
                )
            result = await load(
                path,
                info,
                url,
                on_progress=progress,
                json_mode=JSON_MODE,
                prisma_schema=prisma_schema,
            )
        except (LoadError, BackupFileError) as exc:
            failed = await self._mark_failed(run, branch)
            journal.append("step", "failed", "load", branch_id=branch.id, error=str(exc), left=failed)
            output = getattr(exc, "output", "")
            failing = getattr(exc, "failing_object", None)
            message = f"Loading {path.name} into {branch.name} failed: {exc}" + (
                f" (while loading {failing})" if failing else ""
            )
            if output:
                run.reporter.show(f"Last lines from the load of {path.name}", output)
            raise StepFailedError(
                "restore",
                message,
                hint=(exc.hint + " " if exc.hint else "") + f"{plan.branch.name} was not changed. {failed}",
            ) from None
        data = result.to_json()
        journal.append("step", "done", "load", branch_id=branch.id, result=data)
        for note in result.partial:
            run.reporter.warn(f"Partial in the file: {note}")
        if result.unmapped_fields:
            run.reporter.warn(f"Fields with no column: {', '.join(result.unmapped_fields)}")
        if result.missing_tables:
            run.reporter.warn(f"Tables the file does not hold: {', '.join(result.missing_tables)}")
        for note in result.notes[1:] if self.file_kind == "json" else []:
            run.reporter.info(f"Load: {note}")
        run.reporter.info(f"Loaded {path.name} in {result.seconds:.1f} s ({result.method}).")
        return data

    async def _mark_failed(self, run: Runner, branch: Branch) -> str:
        """After a failed load: a drill's branch is deleted, a restore's renamed ``<name>-failed``."""
        try:
            if run.plan.command == "drill":
                await self._delete(run, branch)
                return f"The drill branch {branch.name} was deleted."
            failed_name = branch.name + FAILED_SUFFIX
            updated = await run.client.update_branch(run.project_id, branch.id, name=failed_name)
            await run.wait(updated.operations, "restore")
            return (
                f"The half-made branch is kept as {failed_name} ({branch.id}) to look at; delete it when done: "
                f"`neonctl branches delete {branch.id}`."
            )
        except NeonError as exc:
            log.warning("could not mark the failed branch %s: %s", branch.id, exc)
            return (
                f"The branch {branch.name} ({branch.id}) holds a failed load and could not be renamed ({exc}); "
                f"delete it: `neonctl branches delete {branch.id}`."
            )

    # --- verify: the file's own counts --------------------------------------------------------------

    async def check_restored(self, run: Runner, restored_url: Secret) -> dict[str, Any] | None:
        """The loaded branch against the file's own counts (loaded rows, manifest, JSON stats)."""
        from recovery_wizard.recovery.files.counts import check_counts
        from recovery_wizard.recovery.files.detect import BackupInfo
        from recovery_wizard.recovery.files.load import LoadResult

        loaded = run.journal.done("load")
        data = dict((loaded.data.get("result") if loaded is not None else None) or {})
        info = BackupInfo(
            Path(self.path),
            self.file_kind,
            self.size,
            self.taken_at,
            self.taken_at_source,
            tables=self.tables,
        )
        result = LoadResult(
            Path(self.path),
            self.file_kind,
            str(data.get("method") or ""),
            data.get("tool_major"),
            float(data.get("seconds") or 0),
            int(data.get("bytes_read") or 0),
            tables=dict(data.get("tables") or {}),
        )
        partial_names = {p.split(":")[0].strip() for p in [*self.partial, *(data.get("partial") or [])]}
        checks = await check_counts(info, result, restored_url)
        lines = [
            CountLine(
                c.table,
                c.expected,
                c.actual,
                c.source,
                at_least=self.file_kind == "json",
                partial=c.table in partial_names or c.table.split(".")[-1] in partial_names,
            )
            for c in checks
        ]
        return {
            "ok": all(line.ok for line in lines),
            "file": self.path,
            "sha256": self.sha256,
            "taken_at": _iso(self.taken_at),
            "taken_at_source": self.taken_at_source,
            "tables": [line.to_dict() for line in lines],
            "partial": sorted({*self.partial, *(data.get("partial") or [])}),
            "unmapped_fields": list(data.get("unmapped_fields") or []),
            "missing_tables": list(data.get("missing_tables") or []),
            # what the load did beyond inserting (a JSON load in auto mode: rows it replaced or removed)
            "load_notes": list(data.get("notes") or []),
        }

    def proof(self, workdir: Path) -> tuple[Path, dict[str, Any]] | None:
        """Where a drill of this file records its proof: beside the file (its backups directory)."""
        return Path(self.path).parent, {"file": self.name, "sha256": self.sha256}


async def _empty_schemas(url: Secret, schemas: tuple[str, ...]) -> None:
    """Drop what the NEW branch holds in ``schemas`` (in one transaction), so a plain SQL dump with its
    schema can create its tables: ``public`` is made again as the same owner with PostgreSQL's default
    grant, others are left for the dump's own ``CREATE SCHEMA``. Only ever the branch this run made."""
    import psycopg
    from psycopg import sql

    from recovery_wizard.recovery.files.load import LoadError
    from recovery_wizard.redact import redact

    try:
        async with await psycopg.AsyncConnection.connect(url.reveal(), connect_timeout=15) as conn:
            for schema in schemas:
                row = await (
                    await conn.execute(
                        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", [schema]
                    )
                ).fetchone()
                if row is None:
                    continue
                await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                if schema == "public":
                    await conn.execute(
                        sql.SQL("CREATE SCHEMA public AUTHORIZATION {}").format(sql.SQL(str(row[0])))
                    )
                    await conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    except psycopg.Error as exc:
        raise LoadError(
            f"Could not empty {', '.join(schemas)} on the new branch before the load: {redact(str(exc))}",
            hint="The SQL dump creates its tables there; check the role's rights on the new branch.",
        ) from None


def _prisma_schema(run: Runner) -> Path | None:
    """The app's Prisma schema (JSON backups map model names through it), installed CLI or not."""
    from recovery_wizard.recovery import prisma

    found = run.plan.prisma
    if found is None:
        try:
            found = prisma.detect(run.workdir)
        except Exception as exc:  # mapping by the database's own names still works without it
            log.debug("no Prisma schema for the JSON mapping: %s", exc)
            return None
    return found.schema_path if found is not None else None


def render_counts(checked: dict[str, Any]) -> str:
    """The file's counts beside the loaded branch's, as plain text (the CLI and the report use it)."""
    rows = [("table", "in the file", "loaded", "")]
    for line in checked.get("tables", []):
        expected = f"≥{line['expected']}" if line["at_least"] else str(line["expected"])
        actual = "missing" if line["actual"] is None else str(line["actual"])
        mark = "ok" if line["ok"] else "MISMATCH"
        if line["partial"]:
            mark += " (partial in the file)"
        rows.append((line["table"], expected, actual, mark))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    text = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    if len(rows) == 1:
        text = ["(the file states no row counts: no manifest, no TOC counts, no stats)"]
    for note in checked.get("partial", []):
        text.append(f"partial: {note}")
    for note in checked.get("load_notes", []):
        text.append(f"load: {note}")
    return "\n".join(text)


def resolve_file(workdir: Path, branch: Branch, ref: str) -> FileSource:
    """``file:<ref>`` examined now, before any branch: refused (exit 2) unless it is a loadable backup.

    ``latest``: the newest backup ``recovery-wizard backup`` wrote in ``<app dir>/backups`` for ``branch``
    (any branch when none is of it), proven by a drill or not.
    """
    from recovery_wizard.recovery.backup.backupdir import latest_backup, resolve_dir
    from recovery_wizard.recovery.files.detect import detect

    if ref == LATEST:
        directory = resolve_dir(workdir, None)
        found = (
            latest_backup(directory, branch=branch.id)
            or latest_backup(directory, branch=branch.name)
            or latest_backup(directory)
        )
        if found is None:
            raise UsageError(
                f"There is no backup file in {directory} to restore from.",
                hint="Take one with `recovery-wizard backup`, or name a file: --from file:<path> "
                "(`recovery-wizard backups find` lists the ones it recognises).",
            )
        path = found.path
    else:
        given = Path(ref).expanduser()
        path = given if given.is_absolute() else workdir / given
        if not path.exists() and not given.is_absolute() and Path.cwd() != workdir and given.exists():
            path = given.resolve()
        if not path.exists():
            raise UsageError(
                f"--from file:{ref}: there is no such file ({path}).",
                hint="`recovery-wizard backups find` lists the backups it recognises.",
            )
    info = detect(path)
    clean: tuple[str, ...] = ()
    if info.kind == "sql":
        from recovery_wizard.recovery.files.sqlcheck import check_sql_file

        # Refused now, before any branch, rather than by the load after one was made.
        clean = tuple(sorted(check_sql_file(path, info.compression).table_schemas))
    return FileSource.of(info, ref, _sha256(path), clean)
