"""The incident record: ``report.md`` in the run directory, written from the journal and the run's results.

Written for the morning after: what happened when (UTC), with which ids, the moment chosen and why, the
verification, what was changed, what the restore lost, and how to undo each change. Every line goes through
``redact``: the record can be pasted into a ticket. Names and values from Neon or the database go through
``printable``: a control sequence in a branch name is shown, not obeyed by the terminal that ``cat``s it.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.handoff import left_by_hand
from recovery_wizard.redact import redact
from recovery_wizard.textsafe import printable

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import RunResult

_EVENT_WORDS = {
    ("run", "start"): "Run started",
    ("run", "resume"): "Run resumed",
    ("run", "end"): "Run ended",
}
_STEP_WORDS = {
    "measure": "damaged data measured",
    "restore": "restore",
    "verify": "verification",
    "prisma": "Prisma",
    "cleanup": "drill branch deletion",
}


_SKIPPED_WORDS = {
    "prisma": "Prisma (`prisma db pull`, `prisma generate`)",
    "env": "pointing the app's env files at the restored data",
}


# What would end a cell or start a code span: a pipe, a backtick, and a backslash that would escape the character
# after it (CommonMark escapes only ASCII punctuation, so ``printable``'s ``\x1b`` and ``\n`` stay as they are).
_CELL_SPECIAL = re.compile(r"\\(?=[!-/:-@\[-`{-~])|[|`]")


def cell(value: object) -> str:
    """One table cell's text: one line, shown not obeyed (``printable``), and Markdown-escaped.

    A ``|`` in a branch or table name would otherwise split the cell, a newline end the row, and a backtick
    open a code span that swallows the cells after it.
    """
    return _CELL_SPECIAL.sub(lambda m: "\\" + m.group(0), printable(str(value)))


def _one(value: object) -> str:
    """A name in running text: one line (a newline in it shows as ``\\n``), so it cannot start a heading or an
    item of its own; the record as a whole keeps its own line breaks."""
    return printable(str(value))


def row(*cells: object) -> str:
    """A Markdown table row; every table in the record is written through this."""
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _span_words() -> str:
    from recovery_wizard.recovery.runner import TIMELINE_SPAN

    return f"{TIMELINE_SPAN.total_seconds() / 3600:g} h"


def _is_own(result: RunResult, event: dict[str, Any]) -> bool:
    """An event of this run itself: after it began, on a branch it made (or the branch it restored)."""
    began = result.journal.start.at if result.journal.start is not None else None
    at = _parse_time(event.get("at"))
    if began is None or at is None or at < began:
        return False
    ids = {b["id"] for b in [result.backup_branch, (result.merge or {}).get("checkpoint")] if b}
    if result.restore_branch is not None:
        ids.add(result.restore_branch.id)
    text = f"{event.get('summary', '')} {event.get('ref', '')}"
    return any(i in text for i in ids)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _timeline(result: RunResult) -> list[str]:
    rows: list[tuple[datetime, str]] = []
    for record in result.journal.records:
        at = record.at
        if record.step == "find-moment":
            # The search ran before this run (the record was copied in when the run began): show it then.
            at = _parse_time(record.data.get("searched_at")) or at
            rows.append(
                (
                    at,
                    f"find-moment search finished (run {record.data.get('run_id')}): canary last held at "
                    f"{record.data.get('last_good')}, failed from {record.data.get('first_bad')}",
                )
            )
            continue
        if record.kind == "run":
            what = _EVENT_WORDS.get((record.kind, record.event), record.event)
            if record.event == "end":
                what += f" ({record.data.get('status')})"
        else:
            step = record.step or ""
            name = _STEP_WORDS.get(step.split(":")[0], step)
            if step.startswith("env:"):
                name = f"env file {record.data.get('path', '')}".strip()
            what = f"{name}: {record.event}"
            details = {
                k: v
                for k, v in record.data.items()
                if k in ("branch_id", "branch_name", "backup_id", "name", "ok")
            }
            if details:
                what += " (" + ", ".join(f"{k} {v}" for k, v in details.items()) + ")"
        rows.append((at, what))
    # Stable: records written in the same instant keep the journal's order.
    return [row(_when(at), what) for at, what in sorted(rows, key=lambda r: r[0])]


def render_report(result: RunResult) -> str:
    plan = result.plan
    out: list[str] = []
    title = "Restore drill" if plan and plan.command == "drill" else "Incident record: data restore"
    out.append(f"# {title}: {_one(plan.project.name) if plan else 'unknown project'}")
    out.append("")
    out.append(f"- **Run**: `{result.journal.run_id}` — status **{result.status}**")
    if plan is not None:
        out.append(f"- **Project**: {_one(plan.project.name)} (`{plan.project.id}`)")
        out.append(f"- **Damaged branch**: {_one(plan.branch.name)} (`{plan.branch.id}`)")
        out.append(f"- **Strategy**: {plan.strategy}")
        out += [_one(line) for line in plan.source.record_lines(plan)]  # one line each, names in them too
        out.append(f"- **Restore point**: {plan.moment.describe()} — asked for as “{plan.moment.text}”")
        out.append(f"- **Restore window then**: {plan.window.describe(plan.moment.zone)}")
        out.append(f"- **Database / role**: {_one(plan.database)} / {_one(plan.role)}")
    if result.restore_branch is not None:
        label = (
            "The past, merged from"
            if plan and plan.merge_back
            else "Restored branch"
            if plan and not plan.in_place
            else "Restored (in place)"
        )
        out.append(f"- **{label}**: {_one(result.restore_branch.name)} (`{result.restore_branch.id}`)")
    if result.backup_branch:
        out.append(
            f"- **Backup of the damaged state**: {_one(result.backup_branch['name'])} (`{result.backup_branch['id']}`)"
        )
    if result.error is not None:
        out.append(f"- **Stopped at**: {result.error}")
        if result.error.hint:
            out.append(f"- **Next**: {result.error.hint}")
    out.append(f"- **Neon API requests**: {result.requests}")
    out += ["", "## Timeline (UTC)", "", "| time | event |", "|---|---|", *_timeline(result)]

    if plan is not None:
        out += ["", "## The moment chosen, and why", ""]
        out.append(
            f"The data was restored as it was at **{plan.moment.rfc3339()}** ({plan.moment.describe()}), "
            f"given as “{plan.moment.text}”. "
            + (
                f"Only the rows lost since then were merged back into {_one(plan.branch.name)}; everything written "
                "to it after that moment was kept (see below)."
                if plan.merge_back
                else f"Everything written to {_one(plan.branch.name)} after that moment is not in the restored data "
                "(see below)."
            )
        )

    if result.search:
        search = result.search
        probes = search.get("probes", [])
        out += ["", "## How the moment was found", ""]
        out.append(
            f"`find-moment` bisected the canary `{search.get('canary')}` over the history: it last held at "
            f"{search.get('last_good')} and failed from {search.get('first_bad')} ({len(probes)} looks at the "
            f"past, nothing restored; run `{search.get('run_id')}`)."
        )
        if probes:
            out += ["", "| moment (UTC) | canary | lens |", "|---|---|---|"]
            for p in probes:
                verdict = "holds" if p.get("holds") else ("fails" if p.get("holds") is False else "error")
                out.append(row(p.get("at"), verdict, p.get("lens")))
    if plan is not None:
        out += ["", "## The project around the restore point (control plane, UTC)", ""]
        own = [e for e in result.timeline if _is_own(result, e)]
        others = [e for e in result.timeline if not _is_own(result, e)]
        for event in others:
            at = _parse_time(event["at"])
            out.append(f"- {_when(at) if at is not None else event['at']}: {event['summary']}")
        if result.journal.done("timeline") is None and not result.timeline:
            out.append("Not read: the run stopped before verification, or Neon did not list the operations.")
        elif not others:
            out.append(
                f"No other control-plane events (operations, branches created or reset) within "
                f"{_span_words()} of the restore point."
            )
        if own:
            out += ["", f"This run's own {len(own)} operation(s) on its own branches are not listed."]

    out += ["", "## Verification", ""]
    verification = result.verification
    if verification is None:
        out.append("Not run.")
    else:
        out += ["| table | damaged | restored | change |", "|---|---:|---:|---:|"]
        for table in verification.get("tables", []):
            name = table["table"] if table["schema"] == "public" else f"{table['schema']}.{table['table']}"
            damaged = count_cell(table.get("damaged"))
            restored = count_cell(table.get("restored"))
            delta = table.get("delta")
            out.append(row(name, damaged, restored, "" if not delta else f"{delta:+d}"))
        tables = verification.get("tables", [])
        if any(
            side and not side.get("exact", True)
            for t in tables
            for side in (t.get("damaged"), t.get("restored"))
        ):
            out.append("")
            out.append("Counts marked ~ are planner estimates (large tables).")
        for check in verification.get("checks", []):
            mark = "passed" if check.get("passed") else "FAILED"
            damaged, restored = _outcome(check.get("damaged")), _outcome(check.get("restored"))
            out.append(f"- Check `{check['sql']}` {mark} (damaged: {damaged}; restored: {restored})")
        file_counts: dict[str, Any] = verification.get("source_counts") or {}
        if file_counts:
            out += [
                "",
                f"Against the backup file's own counts (`{_one(file_counts.get('file'))}`):",
                "",
            ]
            out += ["| table | in the file | loaded | |", "|---|---:|---:|---|"]
            for line in file_counts.get("tables", []):
                expected = f"≥{line['expected']}" if line.get("at_least") else str(line["expected"])
                actual = "missing" if line.get("actual") is None else str(line["actual"])
                mark = ("ok" if line.get("ok") else "MISMATCH") + (
                    " (partial in the file)" if line.get("partial") else ""
                )
                out.append(row(line["table"], expected, actual, mark))
            for note in file_counts.get("partial", []):
                out.append(f"- Partial in the file: {_one(note)}")
            if file_counts.get("unmapped_fields"):
                out.append(f"- Fields with no column: {printable(', '.join(file_counts['unmapped_fields']))}")
            if file_counts.get("missing_tables"):
                out.append(
                    f"- Tables the file does not hold: {printable(', '.join(file_counts['missing_tables']))}"
                )
            for note in file_counts.get("load_notes", []):
                out.append(f"- Load: {_one(note)}")

    if plan is not None and plan.merge_back:
        out += merge_lines(result)
    out += ["", "## Data written after the restore point (not in the restored data)", ""]
    if plan is not None and plan.merge_back:
        out[-2] = "## Data written after the restore point (kept: a merge never deletes it)"
    if plan is not None and plan.merge_back:
        for lost in result.lost:
            out.append(
                f"- {_one(lost['table'])}: {lost['rows']} row(s) (by {', '.join(lost['columns'])}), still there"
            )
        if not result.lost:
            out.append("None found in tables with createdAt/updatedAt-style columns.")
    elif result.lost:
        out.append("Rows on the damaged branch created or updated after the restore point:")
        for lost in result.lost:
            out.append(f"- {_one(lost['table'])}: {lost['rows']} row(s) (by {', '.join(lost['columns'])})")
        out.append("")
        out.append(
            "Re-enter or copy these from the damaged branch"
            + (f" (kept as {_one(result.backup_branch['name'])})" if result.backup_branch else "")
            + " if they matter. Deletions and tables without timestamp columns cannot be listed this way."
        )
    else:
        out.append(
            "None found in tables with createdAt/updatedAt-style columns. Deletions and tables without such "
            "columns cannot be listed this way."
        )

    out += ["", "## What was changed", ""]
    changed = False
    merged = (result.merge or {}).get("result") if plan is not None and plan.merge_back else None
    if merged and not merged.get("nothing") and plan is not None:
        rows = sum(int(v) for v in (merged.get("inserted") or {}).values())
        reverted = sum(int(v) for v in (merged.get("reverted") or {}).values())
        out.append(
            f"- {_one(plan.branch.name)}: {rows} row(s) re-inserted and {reverted} reverted in one transaction "
            f"(ledger row `{merged.get('run_id')}` in recovery_wizard.merge_ledger)."
        )
        changed = True
    checkpoint = (result.merge or {}).get("checkpoint")
    if checkpoint:
        out.append(
            f"- Neon branch {_one(checkpoint['name'])} (`{checkpoint['id']}`) created: the checkpoint before the merge."
        )
        changed = True
    if result.restore_branch is not None and plan is not None and plan.merge_back:
        state = "created and deleted again (dry run)" if result.deleted else "created"
        out.append(
            f"- Neon branch {_one(result.restore_branch.name)} (`{result.restore_branch.id}`) {state}: the past "
            "the rows came back from, kept as proof of what was merged."
            if not result.deleted
            else f"- Neon branch {_one(result.restore_branch.name)} (`{result.restore_branch.id}`) {state}."
        )
        changed = True
    elif result.restore_branch is not None and plan is not None and not plan.in_place:
        state = "deleted again (drill)" if result.deleted else "created"
        out.append(
            f"- Neon branch {_one(result.restore_branch.name)} (`{result.restore_branch.id}`) {state}."
        )
        changed = True
    if result.backup_branch and plan is not None:
        out.append(
            f"- {_one(plan.branch.name)} restored in place; its previous state is the branch "
            f"{_one(result.backup_branch['name'])} (`{result.backup_branch['id']}`)."
        )
        changed = True
    for env in result.env_files:
        out.append(f"- {env['path']}: {', '.join(env['variables'])} rewritten (backup: `{env['backup']}`).")
        changed = True
    if result.prisma:
        out.append(
            f"- Prisma {result.prisma.get('version')}: schema pulled ({result.prisma.get('models')} models, backup "
            f"`{result.prisma.get('schema_backup')}`) and client generated."
        )
        changed = True
    if not changed:
        out.append("Nothing.")
    for step, reason in result.skipped.items():
        out.append(f"- Skipped: {_SKIPPED_WORDS.get(step, step)}, because {reason}.")
    if (
        plan is not None
        and plan.prisma is not None
        and plan.command == "restore"
        and not result.prisma
        and "prisma" not in result.skipped
    ):
        out.append(
            "- Not done: Prisma (`prisma db pull`, `prisma generate`): the run stopped before it finished "
            "(see **Stopped at** above)."
        )

    out += ["", "## How to undo", ""]
    out += [_one(line) for line in undo_lines(result)]
    todo = left_by_hand(result)
    if todo:
        out += ["", "## Left to do by hand", "", *(f"- {_one(line)}" for line in todo)]
    return printable(redact("\n".join(out).rstrip()), multiline=True) + "\n"


def merge_lines(result: RunResult) -> list[str]:
    """The merge's section: per table what came back, what was left out and why, the check after."""
    merge = result.merge or {}
    planned = merge.get("plan") or {}
    merged = merge.get("result") or {}
    out = ["", "## Merge back", ""]
    if not planned:
        out.append("Not planned: the run stopped before the merge plan was made.")
        return out
    inserted, reverted = merged.get("inserted") or {}, merged.get("reverted") or {}
    out += [
        "| table | deleted since | re-inserted | changed since | reverted | added since (kept) | left out | rule |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in planned.get("tables", []):
        diff = t.get("diff") or {}
        name = t["table"]
        label = name.removeprefix("public.")
        came = inserted.get(name, "—" if not merged else 0)
        back = reverted.get(name, "—" if not merged else 0)
        out.append(
            row(
                label,
                diff.get("deleted", "?"),
                came,
                diff.get("changed", "?"),
                back,
                t.get("added_kept", "?"),
                len(t.get("conflicts", [])),
                t.get("rule"),
            )
        )
    if not merged:
        out += ["", "Nothing was merged (the run stopped before the merge committed, or it was a dry run)."]
    elif merged.get("nothing"):
        out += ["", "Nothing to merge back: no lost row could be re-inserted."]
    conflicts = [(t["table"], c) for t in planned.get("tables", []) for c in t.get("conflicts", [])]
    out.append("")
    if conflicts:
        out += ["Left out, and why (the table's rule decides; `--rule TABLE=…` changes it):", ""]
        for table, c in conflicts[:50]:
            key = ", ".join(str(k) for k in c.get("key", []))
            out.append(
                f"- {printable(table)} key {printable(key)}: {c.get('kind')} ({c.get('constraint')}): {c.get('detail')}"
            )
        if len(conflicts) > 50:
            out.append(f"- … and {len(conflicts) - 50} more (the journal's merge-plan record has them all).")
        out.append("")
    for s in planned.get("skipped", []):
        out.append(f"- Left alone: {_one(s.get('table'))}: {s.get('reason')}")
    changed = sum(int(t.get("changed_not_reverted", 0)) for t in planned.get("tables", []))
    if changed:
        out.append(
            f"- {changed} row(s) changed since the moment keep their live values (revert them per table with "
            "--revert-changed TABLE)."
        )
    check = merge.get("check")
    if check:
        verdict = "passed" if check.get("ok") else "FAILED"
        out.append(
            f"- Check after the merge {verdict}: every re-inserted row is in the live branch and every row "
            "added since is still there."
            if "tables" in check
            else f"- Check after the merge {verdict} ({check.get('how')}: {check.get('still_to_insert')})."
        )
    past = merge.get("past")
    if past:
        out.append(
            f"- The past: {past.get('name')} (`{past.get('id')}`), expires {past.get('expires_at') or 'never'}."
        )
    return out


def _outcome(outcome: dict[str, Any] | None) -> str:
    if not outcome:
        return "not run"
    if outcome.get("error"):
        return f"error: {outcome['error']}"
    return str(outcome.get("value"))


def count_cell(side: dict[str, Any] | None) -> str:
    """A row count as the record and the wizard show it: `—` when missing, `~` when estimated."""
    if not side:
        return "—"
    return f"{side['rows']}" + ("" if side.get("exact", True) else "~")


def undo_lines(result: RunResult) -> list[str]:
    """How to undo each change the run made, one line each."""
    plan = result.plan
    lines = []
    if result.env_files:
        lines.append("- Put the env files back: `recovery-wizard env rollback` (restores the backups above).")
    if result.prisma:
        lines.append(
            f"- Put schema.prisma back from `{result.prisma.get('schema_backup')}`, then `prisma generate`."
        )
    if plan is not None and plan.merge_back:
        from recovery_wizard.recovery.apply.merge_back import undo_lines as merge_undo

        lines += merge_undo(result)
    elif plan is not None and result.backup_branch and result.restore_branch is not None:
        lines.append(plan.source.undo_in_place(result))
    elif result.restore_branch is not None and not result.deleted and plan is not None:
        lines.append(
            f"- Delete the restored branch when it is no longer needed: "
            f"`neonctl branches delete {result.restore_branch.id}` (after pointing the app back at "
            f"{_one(plan.branch.name)})."
        )
    return lines or ["Nothing to undo."]


def write_report(result: RunResult) -> Path:
    path = result.journal.run_dir / "report.md"
    text = render_report(result)
    result.journal.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
