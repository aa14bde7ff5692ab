"""Loading a directory as it is on disk: what `fota validate` and tests call.

`validate_tree` returns every problem at once (an empty list means valid);
`load_tree` returns the `DesiredState` or raises `ManifestError` with every problem.
Neither looks at git: uncommitted edits are checked too, which is what a developer wants
before pushing and what CI gets on a checkout.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.model.desired import DesiredState
from reconciler.sources.assemble import Assembler
from reconciler.sources.parsing import ParseCache
from reconciler.sources.problems import Problem
from reconciler.sources.snapshot import MANIFESTS, CommitSnapshot, DirectorySnapshot


def validate_tree(root: Path) -> list[Problem]:
    """Every problem of the desired state under `root`, sorted by file and line."""
    _, problems = check_tree(root)
    return problems


def load_tree(root: Path, revision: str = "worktree") -> DesiredState:
    state, problems = check_tree(root, revision)
    if state is None:
        raise ManifestError([str(p) for p in problems])
    return state


def check_tree(
    root: Path, revision: str = "worktree", cache: ParseCache | None = None,
) -> tuple[DesiredState | None, list[Problem]]:
    """The state when valid, else None and every problem: one load for both answers.
    `cache`: to look at the parsed files again afterwards without parsing them twice."""
    if not (root / MANIFESTS).is_dir():
        return None, [Problem(MANIFESTS, 1, "", f"no {MANIFESTS}/ directory in {root}")]
    return Assembler(cache or ParseCache()).load(DirectorySnapshot(root, revision))


def load_revision(root: Path, revision: str) -> DesiredState:
    """The desired state committed at `revision` (a branch, tag, `origin/main` or sha) of
    the repository at `root`, read from git's object database, not the working tree.
    Raises ManifestError with every problem, ValueError for a revision git cannot find."""
    import git  # gitpython: only the commands that read git load it

    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ValueError(f"{root} is not a git repository") from exc
    try:
        try:
            commit = repo.commit(revision)
        except (git.BadName, git.BadObject, ValueError) as exc:
            raise ValueError(f"no revision {revision!r} in {root}") from exc
        state, problems = Assembler(ParseCache()).load(CommitSnapshot(commit))
    finally:
        repo.close()
    if state is None:
        raise ManifestError([f"{revision}: {p}" for p in problems])
    return state
