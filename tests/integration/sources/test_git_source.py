"""GitSource against real repositories: exact commits, last good state, incremental loads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from builders.manifests import COLLECTION, DEVICES, TWO

from reconciler.model.desired import DesiredState
from reconciler.sources import GitSource

COLL = "manifests/fleet/collection.yaml"
DEVICES_FILE = "manifests/fleet/devices/a.yaml"


def source(repo: Any, tmp_path: Path, interval: float = 10.0) -> GitSource:
    """A source following main of the `repo` fixture (a GitTree from conftest)."""
    return GitSource(str(repo.root), "main", cache_dir=tmp_path / "cache", interval=interval)


def test_sync_applies_the_branch_head_and_tags_it_with_the_commit(repo, tmp_path) -> None:
    head = repo.repo.head.commit.hexsha
    src = source(repo, tmp_path)
    state = src.sync()
    assert state is not None and state.revision == head and src.current is state
    assert sorted(state.devices) == ["2000aaaa", "2000aaab"]
    status = src.status
    assert (status.applied_revision, status.head_revision, status.errors) == (head, head, ())
    assert status.last_sync is not None and status.branch == "main"
    assert src.sync() is None  # nothing new


def test_uncommitted_edits_are_not_desired_state(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    src.sync()
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    assert src.sync() is None
    assert src.current is not None
    assert src.current.collections["1000aaaa"].target_image_id == "3000aaaa"


def test_a_bad_commit_after_a_good_one_leaves_the_good_revision_applied(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    good = src.sync()
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"7.0.0"'))
    bad = repo.commit("target an image that does not exist")
    assert src.sync() is None
    assert src.current is good
    status = src.status
    assert status.applied_revision == good.revision and status.head_revision == bad
    assert status.errors == (
        f"{COLL}:5: firmware.target: no image of collection 1000aaaa has version or id '7.0.0'",
    )
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    fixed = repo.commit("target 1.1.0")
    state = src.sync()
    assert state is not None and state.revision == fixed and src.status.errors == ()
    assert state.collections["1000aaaa"].target_image_id == "3000aaab"


def test_a_one_line_commit_parses_only_the_changed_blob(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    src.sync()
    assert src.cache.parse_count == 5  # collection, images, devices, two binaries
    repo.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"1.0.0"'))
    repo.commit("device 2000aaaa back to 1.0.0")
    state = src.sync()
    assert state is not None and state.devices["2000aaaa"].target_image_id == "3000aaaa"
    changed = repo.repo.head.commit.tree[DEVICES_FILE].hexsha
    assert src.cache.round_parsed == [changed]
    assert src.cache.parse_count == 6


def test_a_restart_reads_the_parse_cache_from_disk(repo, tmp_path) -> None:
    first = source(repo, tmp_path).sync()
    again = source(repo, tmp_path)
    state = again.sync()
    assert again.cache.parse_count == 0
    assert state == first


def test_image_bytes_come_from_the_applied_revision(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    state = src.sync()
    assert state is not None
    (repo.root / "images/fleet/zephyr-1.1.0.signed.bin").write_bytes(b"edited, uncommitted")
    assert src.image_bytes(state.images["3000aaab"]) == TWO


def test_a_remote_url_is_cloned_and_fetched(repo, tmp_path) -> None:
    src = GitSource(repo.root.as_uri(), "main", cache_dir=tmp_path / "cache")
    first = src.sync()
    assert first is not None and first.revision == repo.repo.head.commit.hexsha
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    second = repo.commit("target 1.1.0")
    state = src.sync()
    assert state is not None and state.revision == second
    assert (tmp_path / "cache" / "mirrors").is_dir()


def test_an_unreachable_repository_is_reported_in_the_status(tmp_path) -> None:
    src = GitSource((tmp_path / "missing").as_uri(), cache_dir=tmp_path / "cache")
    assert src.sync() is None and src.current is None
    assert src.status.errors[0].startswith("git: ")
    with pytest.raises(FileNotFoundError):
        src.image_bytes(object())  # type: ignore[arg-type]


def test_a_missing_branch_is_a_source_error_and_keeps_the_applied_state(repo, tmp_path) -> None:
    src = GitSource(str(repo.root), "gone", cache_dir=tmp_path / "cache")
    assert src.sync() is None and src.current is None
    assert src.status.errors == (f"git: branch 'gone' not found in {repo.root}",)
    followed = source(repo, tmp_path)
    state = followed.sync()
    repo.repo.git.branch("-m", "main", "renamed")
    assert followed.sync() is None and followed.current is state
    assert followed.status.errors == (f"git: branch 'main' not found in {repo.root}",)
    assert followed.status.applied_revision == repo.repo.head.commit.hexsha


def test_another_branch_is_followed_independently(repo, tmp_path) -> None:
    repo.repo.git.checkout("-b", "canary")
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    repo.commit("canary: 1.1.0")
    repo.repo.git.checkout("main")
    main = source(repo, tmp_path).sync()
    canary = GitSource(str(repo.root), "canary", cache_dir=tmp_path / "cache").sync()
    assert main is not None and canary is not None
    assert main.collections["1000aaaa"].target_image_id == "3000aaaa"
    assert canary.collections["1000aaaa"].target_image_id == "3000aaab"


async def test_run_reacts_to_a_new_commit_without_waiting_for_the_poll(repo, tmp_path) -> None:
    src = source(repo, tmp_path, interval=3600.0)
    seen: asyncio.Queue[DesiredState] = asyncio.Queue()

    async def on_desired(state: DesiredState) -> None:
        await seen.put(state)

    stop = asyncio.Event()
    task = asyncio.create_task(src.run(on_desired, stop))
    first = await asyncio.wait_for(seen.get(), 10)
    await asyncio.wait_for(src.watching.wait(), 10)
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    second = await asyncio.to_thread(repo.commit, "target 1.1.0")
    state = await asyncio.wait_for(seen.get(), 10)
    assert first.revision != second and state.revision == second
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_run_stops_promptly_and_leaves_the_callers_event_alone(repo, tmp_path) -> None:
    src = source(repo, tmp_path, interval=3600.0)
    ready = asyncio.Event()

    async def on_desired(state: DesiredState) -> None:
        ready.set()

    stop = asyncio.Event()
    task = asyncio.create_task(src.run(on_desired, stop))
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.wait_for(src.watching.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not stop.is_set()


def test_a_committed_symlink_that_leaves_the_repository_is_refused(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    good = src.sync()
    binary = repo.root / "images/fleet/zephyr-1.0.0.signed.bin"
    binary.unlink()
    binary.symlink_to("../../../outside.bin")
    repo.commit("point the image outside")
    assert src.sync() is None and src.current is good
    assert src.status.errors == (
        "manifests/fleet/images.yaml:4: images[0].path: images/fleet/zephyr-1.0.0.signed.bin "
        "leaves the repository (symlink to ../../../outside.bin)",
    )


def test_a_committed_symlink_inside_the_repository_is_followed(repo, tmp_path) -> None:
    binary = repo.root / "images/fleet/zephyr-1.1.0.signed.bin"
    binary.rename(repo.root / "images/shared.bin")
    binary.symlink_to("../shared.bin")
    repo.commit("share a binary")
    src = source(repo, tmp_path)
    state = src.sync()
    assert state is not None
    assert src.image_bytes(state.images["3000aaab"]) == TWO


def test_the_disk_cache_keeps_only_the_applied_revisions_blobs(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    src.sync()
    repo.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"1.0.0"'))
    repo.commit("device 2000aaaa back to 1.0.0")
    src.sync()
    cached = {p.name.split(".")[0] for p in (tmp_path / "cache" / "parsed").iterdir()}
    tree = repo.repo.head.commit.tree
    wanted = {tree[p].hexsha for p in (COLL, DEVICES_FILE, "manifests/fleet/images.yaml",
                                       "images/fleet/zephyr-1.0.0.signed.bin",
                                       "images/fleet/zephyr-1.1.0.signed.bin")}
    assert cached == wanted


def test_the_status_keeps_the_first_problems_and_a_count(
    repo, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.sources import git_source

    monkeypatch.setattr(git_source, "MAX_STATUS_ERRORS", 1)
    repo.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"8.0.0"') + "- {}\n")
    repo.commit("two problems")
    src = source(repo, tmp_path)
    assert src.sync() is None and src.current is None
    assert src.status.errors == (
        f"{DEVICES_FILE}:2: devices[0].target: no image of collection 1000aaaa has version "
        "or id '8.0.0'",
        "... and 1 more problems (run fota validate)",
    )


def test_a_corrupt_cache_file_is_parsed_again_not_trusted(repo, tmp_path) -> None:
    first = source(repo, tmp_path).sync()
    for path in (tmp_path / "cache" / "parsed").iterdir():
        path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    again = source(repo, tmp_path)
    assert again.sync() == first
    assert again.cache.parse_count == 5


async def test_run_without_a_watcher_finds_new_commits_by_polling(repo, tmp_path) -> None:
    src = GitSource(str(repo.root), "main", cache_dir=tmp_path / "cache", interval=0.05,
                    watch=False)
    seen: asyncio.Queue[DesiredState] = asyncio.Queue()

    async def on_desired(state: DesiredState) -> None:
        await seen.put(state)

    stop = asyncio.Event()
    task = asyncio.create_task(src.run(on_desired, stop))
    await asyncio.wait_for(seen.get(), 10)
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    second = await asyncio.to_thread(repo.commit, "target 1.1.0")
    assert (await asyncio.wait_for(seen.get(), 10)).revision == second
    assert not src.watching.is_set()
    stop.set()
    await asyncio.wait_for(task, 10)


def test_a_followed_branch_deleted_after_a_sync_is_recorded_not_raised(repo, tmp_path) -> None:
    repo.repo.create_head("fleet")
    src = GitSource(str(repo.root), "fleet", cache_dir=tmp_path / "cache")
    state = src.sync()
    repo.repo.delete_head("fleet", force=True)
    assert src.sync() is None and src.current is state
    assert src.git_error is not None and "fleet" in src.git_error
    assert src.status.errors == (src.git_error,)
    repo.repo.create_head("fleet")
    assert src.sync() is None and src.git_error is None and src.status.errors == ()


async def test_poll_calls_back_with_each_changed_status_after_the_new_state(
        repo, tmp_path) -> None:
    told: list[tuple[str, Any]] = []

    async def on_desired(state: DesiredState) -> None:
        told.append(("desired", state.revision))

    src = GitSource(str(repo.root), "main", cache_dir=tmp_path / "cache",
                    on_status=lambda status: told.append(("status", status)))
    first = repo.repo.head.commit.hexsha
    assert (await src.poll(on_desired)) is not None
    assert [kind for kind, _ in told] == ["desired", "status"]
    assert told[1][1].applied_revision == first and told[1][1].errors == ()
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"7.0.0"'))
    bad = repo.commit("target an image that does not exist")
    assert await src.poll(on_desired) is None
    kind, status = told[-1]
    assert (kind, status.head_revision, status.applied_revision) == ("status", bad, first)
    assert len(status.errors) == 1 and "7.0.0" in status.errors[0]
    assert len(told) == 3  # no state to apply, one changed status


async def test_image_reads_the_current_states_image_off_the_loop(repo, tmp_path) -> None:
    src = source(repo, tmp_path)
    assert await src.poll() is not None
    assert await src.image("3000aaab") == TWO
    with pytest.raises(FileNotFoundError, match="no image 3000ffff"):
        await src.image("3000ffff")


def test_without_a_branch_main_is_followed_and_a_checkout_changes_nothing(
        repo, tmp_path) -> None:
    src = GitSource(str(repo.root), cache_dir=tmp_path / "cache")
    main = src.sync()
    assert main is not None and src.status.branch == "main"
    repo.repo.git.checkout("-b", "pr/x")
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    pr = repo.commit("an unmerged change")
    assert src.sync() is None and src.current is main
    assert (src.status.applied_revision, src.status.head_revision) == (main.revision,
                                                                       main.revision)
    repo.repo.git.checkout("main")
    repo.repo.git.merge(pr)
    merged = src.sync()
    assert merged is not None and merged.revision == pr


def test_a_url_without_a_branch_follows_the_remotes_default_branch(repo, tmp_path) -> None:
    repo.repo.git.branch("-m", "main", "trunk")
    src = GitSource(repo.root.as_uri(), cache_dir=tmp_path / "cache")
    state = src.sync()
    assert state is not None and src.status.branch == "trunk"
    repo.repo.git.checkout("-b", "elsewhere")
    repo.write(COLL, COLLECTION.replace('"1.0.0"', '"1.1.0"'))
    repo.commit("on another branch")
    assert src.sync() is None and src.status.branch == "trunk"
