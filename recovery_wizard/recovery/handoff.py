"""What a run leaves for a person to do by hand, in one place for the CLI summary, the report and the wizard.

A restore to a new branch is only half the repair: the app reads its connection strings from wherever it
runs. An env file in this directory is what a developer's machine reads; production reads the hosting
provider's environment variables. So every end of a run says what is still pointing at the damaged data,
and why, instead of "done". Plain sentences without markup: each UI renders them its own way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import RunResult

_DEFAULT_VARIABLES = ("DATABASE_URL", "DIRECT_URL")


def left_by_hand(result: RunResult) -> list[str]:
    """The steps a person still has to take after ``result``, most urgent first (empty: none)."""
    plan = result.plan
    if plan is None or plan.command != "restore" or plan.in_place or plan.merge_back:
        return []  # a merge-back writes into the branch the app already uses  # a drill changes nothing the app uses; in place, the connection strings stay the same
    branch = result.restore_branch
    if branch is None:
        return []  # nothing was restored: nothing to repoint (the error says what to do next)
    if result.status != "done" and not (result.verification or {}).get("ok"):
        # Stopped before the restored data was verified, or it failed verification: pointing the app at it
        # is not the next step (the error and its hint are).
        return []
    variables = [v for t in plan.env_targets for v in t.variables] or list(_DEFAULT_VARIABLES)
    names = ", ".join(dict.fromkeys(variables))
    todo: list[str] = []
    rewritten = {str(env.get("path")) for env in result.env_files}
    if not plan.env_targets:
        todo.append(
            f"No env file was repointed: {names} still point at the damaged branch {plan.branch.name} "
            f"everywhere. Point them at {branch.name} ({branch.id}) yourself; its connection strings: "
            f"neonctl connection-string {branch.name} --project-id {plan.project.id} "
            f"--database-name {plan.database} --role-name {plan.role} (add --pooled for the app's URL)."
        )
    for target in plan.env_targets:
        if str(target.path) not in rewritten:
            todo.append(
                f"{target.path} was not rewritten: {', '.join(target.variables)} still point at the damaged "
                f"branch {plan.branch.name}. Finish the run with recovery-wizard restore --resume "
                f"{result.journal.run_id}, or edit the file by hand."
            )
        todo += target.warnings
    todo.append(
        f"Set {names} to the connection strings of {branch.name} wherever else the app runs: the hosting "
        "provider's environment variables (Vercel, Fly.io, Render, Railway, Netlify, …), CI and preview "
        "environments, other machines' env files. Then redeploy or restart the app so it reads them: "
        "until then it keeps writing to the damaged branch."
    )
    return todo
