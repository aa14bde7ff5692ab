"""`fota plan` on a real repository against the state file a real `fota serve` wrote."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from controller_harness import (
    COLLECTION,
    DesiredRepo,
    all_in,
    fleet_of,
    serving,
    settings_for,
    specs,
    until,
)

from reconciler.cli import main
from reconciler.model.status import UpdateState


async def _observed_fleet(tmp_path: Path) -> tuple[DesiredRepo, Path]:
    repo = DesiredRepo(tmp_path / "repo", count=3)
    state = tmp_path / "state.db"
    async with serving(settings_for(repo, state)) as running, fleet_of(running, specs(3)):
        await until(running.controller, all_in(running.controller, UpdateState.CURRENT))
    return repo, state


async def test_plan_counts_the_devices_a_proposed_target_would_move(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo, state = await _observed_fleet(tmp_path)
    repo.target = "2.0"
    repo.write_manifests()  # the pull request's working tree, not committed
    code = main(["plan", "--repo", str(repo.root), "--against", str(state),
                 "--format", "json"])
    [plan] = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (plan["collectionId"], plan["target"], plan["current"]) == (COLLECTION, "2.0", 0)
    assert plan["moves"] == [{"from": "1.0", "to": "2.0", "devices": 3}]


async def test_plan_can_ask_a_running_reconcilers_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3)
    async with serving(settings_for(repo, tmp_path / "s.db")) as running, \
            fleet_of(running, specs(3)):
        await until(running.controller, all_in(running.controller, UpdateState.CURRENT))
        repo.target = "2.0"
        repo.write_manifests()
        url = f"http://127.0.0.1:{running.http_port}"
        # fota plan blocks on HTTP; the server runs on this loop, so plan in a thread.
        code = await asyncio.to_thread(main, ["plan", "--repo", str(repo.root),
                                              "--against", url])
    assert code == 0
    assert "3 devices move 1.0 -> 2.0" in capsys.readouterr().out


def test_plan_against_a_missing_state_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    assert main(["plan", "--repo", str(repo.root), "--against", str(tmp_path / "no.db")]) == 2
    assert "no state file" in capsys.readouterr().err


def test_plan_without_a_state_file_counts_devices_as_unreported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    assert main(["plan", "--repo", str(repo.root)]) == 0
    assert "2 devices move unreported -> 1.0" in capsys.readouterr().out


def test_plan_of_an_invalid_tree_prints_file_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    repo.target = "9.9"
    repo.write_manifests()
    assert main(["plan", "--repo", str(repo.root)]) == 1
    error = capsys.readouterr().err
    assert f"manifests/{COLLECTION}/collection.yaml:" in error and "9.9" in error


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Its access log would land in the captured stderr the test reads."""


@contextmanager
def _static_http(root: Path) -> Iterator[str]:
    """`python3 -m http.server` for `root` on a free loopback port, in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("files", "why"),
    [({}, "GET /collections answered 404"),
     ({"collections": "<html>hello</html>"}, "GET /collections did not answer JSON"),
     ({"collections": '{"items": []}'}, "/collections has no collection list")],
)
def test_plan_against_a_url_that_is_not_a_fota_api_fails_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], why: str,
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    site = tmp_path / "site"
    site.mkdir()
    for name, text in files.items():
        (site / name).write_text(text)
    with _static_http(site) as url:
        code = main(["plan", "--repo", str(repo.root), "--against", url])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip().splitlines() == [f"fota plan: {url} is not a fota API: {why}"]
