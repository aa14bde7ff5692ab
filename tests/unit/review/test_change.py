"""`fota plan --base`: what one change does, apart from what already drifts, as a
pull-request comment, with terraform-style exit codes; both states read from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from builders import CID, NEW, OLD, collection, desired_state, device, image
from builders.manifests import Tree

from reconciler.cli import main
from reconciler.engine.machine import HOLDS
from reconciler.model.desired import RolloutPolicy
from reconciler.review.change import render_markdown, review_change
from reconciler.review.summary import summarize
from reconciler.store import DeviceView

C2 = "c2"
C2_OLD, C2_NEW = image("cccc3", "1.0", C2), image("dddd4", "2.0", C2)


def _state(target: str, revision: str):  # type: ignore[no-untyped-def]
    devices = [device(f"d{n}") for n in range(4)]
    devices += [device(f"e{n}", collection_id=C2) for n in range(2)]
    return desired_state([collection(target), collection(C2_NEW.image_id, collection_id=C2)],
                         [OLD, NEW, C2_OLD, C2_NEW], devices, revision)


def _view(device_id: str, cid: str, version: str) -> DeviceView:
    return DeviceView(device_id, cid, {}, None, None, version, None, None, None, None, None)


OBSERVED = {**{f"d{n}": _view(f"d{n}", CID, "1.0") for n in range(4)},
            "e0": _view("e0", C2, "1.0"), "e1": _view("e1", C2, "2.0")}


def test_the_change_and_the_drift_are_told_apart_and_warned_about() -> None:
    change = review_change(_state(OLD.image_id, "base0"), _state(NEW.image_id, "head0"),
                           OBSERVED)
    assert [(p.collection_id, dict(p.moves)) for p in change.plans] == [
        (CID, {("1.0", "2.0"): 4})]
    assert [(p.collection_id, dict(p.moves)) for p in change.drift] == [
        (C2, {("1.0", "2.0"): 1})]
    assert change.warnings == [
        f"this change targets 100 % of 4 devices of collection {CID} with no failureThreshold"]
    text = render_markdown(change)
    assert text.splitlines()[:5] == [
        "### fota plan: `base0` → `head0`", "",
        "**This change moves 4 devices in 1 collection.**", "",
        f"> ⚠️ this change targets 100 % of 4 devices of collection {CID} with no "
        "failureThreshold"]
    assert "| 1.0 | 2.0 | 4 |" in text
    assert "Already drifting regardless of this change: 1 device</summary>" in text


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    """A repository whose HEAD retargets the collection, and HEAD~1 is its base."""
    tree = Tree(tmp_path / "repo").valid()
    _git(tree.root, "init", "-q", "-b", "main")
    _git(tree.root, "-c", "user.name=t", "-c", "user.email=t@e", "add", "-A")
    _git(tree.root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "base")
    coll = tree.root / "manifests/fleet/collection.yaml"
    coll.write_text(coll.read_text().replace('target: "1.0.0"', 'target: "1.1.0"'))
    _git(tree.root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "retarget")
    coll.write_text("broken: [\n")  # the working tree is not read with --base
    return tree.root


def test_exit_code_2_when_the_change_moves_devices_0_when_none_1_on_error(
        pull_request: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = ["--repo", str(pull_request), "--exit-code"]
    assert main(["plan", *repo, "--base", "HEAD~1", "--format", "markdown"]) == 2
    out = capsys.readouterr().out
    assert "**This change moves 2 devices in 1 collection.**" in out
    assert main(["plan", *repo, "--base", "HEAD"]) == 0
    assert main(["plan", *repo, "--base", "no-such-branch"]) == 1
    assert "no revision 'no-such-branch'" in capsys.readouterr().err


def test_a_raised_retry_counter_moves_the_failed_devices_instead_of_holding_them() -> None:
    def state(retry: int, revision: str):  # type: ignore[no-untyped-def]
        coll = collection(NEW.image_id, rollout=RolloutPolicy(retry=retry))
        return desired_state(coll, [OLD, NEW], [device("d0"), device("d1")], revision)

    failed = DeviceView("d0", CID, {}, None, NEW.image_id, "1.0", None, None, None,
                        "UpdateFailed", None)
    observed = {"d0": failed, "d1": _view("d1", CID, "2.0")}
    [held] = summarize(state(0, "base"), observed)
    assert list(held.blocked) == [f"UpdateFailed {HOLDS}"]
    change = review_change(state(0, "base"), state(1, "head"), observed)
    [plan] = change.plans
    assert dict(plan.moves) == {("1.0", "2.0"): 1} and not plan.blocked
