"""The env step asks git about the app's own repository, whatever the user's shell exported.

Real git, real repositories. ``GIT_DIR`` / ``GIT_WORK_TREE`` / ``GIT_INDEX_FILE`` / ``GIT_CONFIG_*`` in the
user's environment pointed the child at another repository (or index, or config): the warning "this .env is
tracked by git" was then missing for a tracked file, or given for an untracked one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from recovery_wizard.recovery.envfile import git_tracked

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _repo(root: Path, *tracked: str) -> Path:
    root.mkdir(parents=True)
    subprocess.run(
        ["git", "init", "-q"], cwd=root, check=True, env={"PATH": "/usr/bin:/bin", "HOME": str(root)}
    )
    for name in tracked:
        (root / name).write_text("A=1\n")
        subprocess.run(
            ["git", "add", name], cwd=root, check=True, env={"PATH": "/usr/bin:/bin", "HOME": str(root)}
        )
    return root


def test_git_dir_and_work_tree_from_the_shell_do_not_pick_another_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _repo(tmp_path / "app", ".env")
    (app / ".env.local").write_text("A=2\n")
    dotfiles = _repo(tmp_path / "dotfiles", ".env.local")
    monkeypatch.setenv("GIT_DIR", str(dotfiles / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(dotfiles))
    assert git_tracked(app / ".env")
    assert not git_tracked(app / ".env.local")


def test_an_index_or_config_from_the_shell_does_not_change_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _repo(tmp_path / "app", ".env")
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "no-such-index"))
    assert git_tracked(app / ".env")
    monkeypatch.delenv("GIT_INDEX_FILE")
    # Config given through the environment: a broken include makes git fail, so the answer would be "no".
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.worktree")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(tmp_path / "elsewhere"))
    assert git_tracked(app / ".env")


def test_the_git_child_gets_the_c_locale_no_pager_no_prompt_and_none_of_our_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _repo(tmp_path / "app", ".env")
    real_git = shutil.which("git")
    assert real_git is not None
    # A stand-in for git on PATH (an external program, not ours) that records what it was given, then runs git.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen-env"
    stand_in = bin_dir / "git"
    stand_in.write_text(
        f'#!/bin/sh\nenv > "{seen}"\nprintf "%s\\n" "$@" > "{seen}.argv"\nexec {real_git} "$@"\n'
    )
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("GIT_PAGER", "less")
    monkeypatch.setenv("GIT_ASKPASS", "/usr/bin/some-askpass")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("NEON_API_KEY", "napi_secretsecretsecret")
    monkeypatch.setenv("PGPASSWORD", "hunter2")

    assert git_tracked(app / ".env")

    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["LC_ALL"] == "C"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_PAGER"] == "cat"
    assert env["GIT_ASKPASS"] == ""
    assert env["PATH"] == f"{bin_dir}:/usr/bin:/bin"
    assert not {"GIT_DIR", "NEON_API_KEY", "PGPASSWORD"} & env.keys()
    assert "--no-pager" in seen.with_name("seen-env.argv").read_text().splitlines()
