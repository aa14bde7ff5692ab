"""What `fota status` prints: the summary table, one device's conditions and timeline,
and the live view of `--watch`. With `rich` on a terminal (tables, progress bars); plain
lines otherwise, so a CI log or a pipe reads well. Called by `watch.cmd` and
`watch.follow`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from reconciler.watch.rollout import Progress as Figures
from reconciler.watch.rollout import progress

HEADERS = ("collection", "management", "target", "devices", "current", "in flight",
           "failed", "halted")


def summary(status: dict[str, Any], only: str | None, out: TextIO, fancy: bool) -> None:
    source = status.get("source") or {}
    head = f"revision {str(status.get('appliedRevision') or '-')[:12]}"
    if source.get("branch"):
        head += f" (branch {source['branch']})"
    rows = [_row(c) for c in progress(status, only)]
    if fancy:
        table = Table(*HEADERS, title=head, title_justify="left")
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
    else:
        print(head, file=out)
        for row in [list(HEADERS), *rows]:
            print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, _WIDTHS, strict=True)),
                  file=out)
    for error in source.get("errors") or []:
        print(f"source error: {error}", file=out)


_WIDTHS = (16, 10, 16, 7, 7, 9, 6, 0)


def _row(c: Figures) -> list[str]:
    halted = f"yes: {c.reason}" if c.halted and c.reason else ("yes" if c.halted else "no")
    return [c.collection_id, c.management, c.target or "-", str(c.devices), str(c.current),
            str(c.count(in_flight=True)), str(c.count(terminal=True)), halted]


def device(body: dict[str, Any], out: TextIO) -> None:
    firmware = body.get("firmware") or {}
    print(f"device {body.get('deviceId')} in collection {body.get('collectionId')}", file=out)
    for key in ("state", "stateMessage", "firmwareVersion", "currentFirmwareId",
                "targetFirmwareId"):
        if key in firmware:
            print(f"  {key}: {firmware[key]}", file=out)
    print("conditions:", file=out)
    for c in body.get("conditions") or []:
        print(f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')} "
              f"({_when(c.get('lastTransitionTime'))})", file=out)
    print("events:", file=out)
    for e in body.get("events") or []:
        print(f"  {_when(e.get('at'))}  {e.get('kind')}: {e.get('message')}", file=out)


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


class LiveView(Protocol):
    def show(self, collections: list[Figures]) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainView:
    """A line per collection whose figures changed: a CI log shows the rollout's steps."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._last: dict[str, str] = {}

    def show(self, collections: list[Figures]) -> None:
        for c in collections:
            lines = {c.collection_id: c.line(),
                     **{f"{c.collection_id}/{w.name}": w.line(c.collection_id) for w in c.waves}}
            for key, line in lines.items():
                if self._last.get(key) != line:
                    self._last[key] = line
                    print(line, file=self._out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def close(self) -> None:
        return None


class BarsView:
    """A progress bar per collection (devices Current of those with a target), and one
    per wave below it when the rollout has waves."""

    def __init__(self, out: TextIO) -> None:
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                              console=Console(file=out), transient=False)
        self._tasks: dict[str, TaskID] = {}
        self._bars.start()

    def show(self, collections: list[Figures]) -> None:
        for c in collections:
            detail = (f"{c.count(in_flight=True)} in flight, {c.count(terminal=True)} failed"
                      + (f", halted: {c.reason}" if c.halted else ""))
            detail += f", wave {c.wave}" if c.wave else ""
            self._bar(c.collection_id, c.collection_id, c.current, c.managed, detail)
            for w in c.waves:
                self._bar(f"{c.collection_id}/{w.name}", f"  {w.name}", w.current, w.members,
                          f"{w.in_flight} in flight, {w.failed} failed")

    def _bar(self, key: str, label: str, done: int, total: int, detail: str) -> None:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._bars.add_task(label, total=total, detail=detail)
        self._bars.update(task, completed=done, total=total, detail=detail)

    def note(self, text: str) -> None:
        self._bars.console.print(text)

    def close(self) -> None:
        self._bars.stop()
