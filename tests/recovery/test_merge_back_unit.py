"""The merge-back strategy's pure parts: the recommendation, the checkpoint's proof, the options' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recovery_wizard.neon.models import Branch
from recovery_wizard.recovery.apply import MergeBack, strategy_for
from recovery_wizard.recovery.apply.merge_back import checkpoint_name, why_not_our_checkpoint
from recovery_wizard.recovery.lostwrites import LostRows, recommend_strategy
from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.plan import RunOptions, _check_merge_options

BEGUN = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def test_merge_back_is_recommended_only_when_writes_came_after_the_moment() -> None:
    assert recommend_strategy([]) is None
    assert recommend_strategy([LostRows("public", "User", ("createdAt",), 0)]) is None
    assert recommend_strategy([LostRows("public", "User", ("createdAt",), 1)]) == "merge-back"
    # The journal's and --json's form (dicts) works the same.
    assert (
        recommend_strategy([{"schema": "public", "table": "Order", "columns": [], "rows": 3}]) == "merge-back"
    )


def branch(**kw: object) -> Branch:
    fields: dict[str, object] = {
        "id": "br-cp",
        "project_id": "p",
        "name": "main-before-merge-x",
        "current_state": "ready",
        "parent_id": "br-main",
        "created_at": BEGUN + timedelta(seconds=5),
    }
    fields.update(kw)
    return Branch(**fields)  # type: ignore[arg-type]


def test_a_checkpoint_is_adopted_only_with_every_proof() -> None:
    ours = {"recovery-wizard-run": "run-1"}
    args: dict[str, Any] = {"run_id": "run-1", "parent_id": "br-main", "begun_at": BEGUN}
    assert why_not_our_checkpoint(branch(), ours, **args) == []
    assert "no recovery-wizard run marker" in why_not_our_checkpoint(branch(), {}, **args)[0]
    assert (
        "another recovery-wizard run (run-2)"
        in why_not_our_checkpoint(branch(), {"recovery-wizard-run": "run-2"}, **args)[0]
    )
    assert "its parent is br-other" in why_not_our_checkpoint(branch(parent_id="br-other"), ours, **args)[0]
    old = branch(created_at=BEGUN - timedelta(hours=1))
    assert "created before this run began" in why_not_our_checkpoint(old, ours, **args)[0]
    assert "default" in why_not_our_checkpoint(branch(default=True), ours, **args)[0]


def test_checkpoint_names_say_what_and_when() -> None:
    assert checkpoint_name("main", BEGUN) == "main-before-merge-2026-11-21T23-00-00Z"


def options(**kw: object) -> RunOptions:
    fields: dict[str, object] = {"command": "restore", "workdir": Path(".")}
    fields.update(kw)
    return RunOptions(**fields)  # type: ignore[arg-type]


def test_merge_options_belong_to_merge_back_and_rules_are_known() -> None:
    _check_merge_options(
        options(strategy="merge-back", merge_tables=["User"], merge_rules={"*": "keep-live"})
    )
    with pytest.raises(UsageError, match="--tables, --revert-changed only apply to a merge"):
        _check_merge_options(options(merge_tables=["User"], revert_changed=["Listing"]))
    with pytest.raises(UsageError, match="--rule"):
        _check_merge_options(options(command="drill", strategy="merge-back", merge_rules={"User": "skip"}))
    with pytest.raises(UsageError, match="User=overwrite"):
        _check_merge_options(options(strategy="merge-back", merge_rules={"User": "overwrite"}))


def test_the_strategy_is_chosen_by_the_plan() -> None:
    class P:
        merge_back = True
        in_place = False

    assert isinstance(strategy_for(P()), MergeBack)  # type: ignore[arg-type]
