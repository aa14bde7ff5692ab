"""The anatomy of the slowest devices of a loss benchmark rollout (bench/loss.py --trace).

Joins the server's log (transitions, the executor's lines) with the proxy's datagram
trace (bench/udp_proxy.py --trace: every datagram either way with its fate) per device,
and for each of the slowest devices says where its time went up to its Current: the
milestones of its update (first push block or URI write, last block through, Execute,
its Register after the reboot) as seconds after the commit, and every silence over
`GAP` seconds in its traffic with the datagram before it (and whether that one was
dropped) and the one that ended it: a lost request waiting out a retransmission
timeout, or an engine that waits without asking, shows up as such a silence.

Pure functions over the log lines and the trace lines; called by bench/loss.py.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GAP = 1.0  # seconds of silence in a device's traffic worth a line
DEVICE_LINE = re.compile(r"reconciler\.(\w+): (\S+) \(([^)]*)\): (.*)")
EXECUTOR_LINE = re.compile(r"reconciler\.executor: (\S+): (.*)")
CURRENT = "-> Current: running 2.0"


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def endpoints_by_port(trace: Iterable[dict[str, Any]]) -> dict[int, str]:
    """The device behind each proxy port, from the endpoint its Register names (a
    rebooted device comes back from a new port and registers again) and, for the port
    a pull device downloads from, the offer its package URI named."""
    ports: dict[int, str] = {}
    offers: dict[str, str] = {}
    for d in trace:
        if d.get("ep") and d["way"] == "up":
            ports[d["port"]] = d["ep"]
        elif d.get("offer") and d["port"] in ports:
            offers[d["offer"]] = ports[d["port"]]
        elif d["port"] not in ports and d.get("path", "").startswith("/fw/"):
            owner = offers.get(d["path"][len("/fw/"):])
            if owner is not None:
                ports[d["port"]] = owner
    return ports


def describe(datagram: dict[str, Any]) -> str:
    """One datagram in a line: way, type, code, path, block, observe, fate."""
    parts = [datagram["way"], datagram.get("type", "?"), datagram.get("code", "?")]
    if "path" in datagram:
        parts.append(datagram["path"])
    for name in ("block1", "block2"):
        if name in datagram:
            num, more, szx = datagram[name]
            parts.append(f"{name}={num}{'+' if more else ''}/{16 << szx}")
    if "observe" in datagram:
        parts.append(f"obs={datagram['observe']}")
    parts.append(f"mid={datagram.get('mid')}")
    if datagram["fate"] != "sent":
        parts.append(datagram["fate"].upper())
    return " ".join(str(p) for p in parts)


def anatomy(lines: list[tuple[float, str]], trace: list[dict[str, Any]], since: float,
            slowest: int = 5) -> dict[str, Any]:
    """The slowest `slowest` devices to reach Current after `since` (the commit): their
    milestones, silences and log lines; and over all devices, the silences by what
    preceded them."""
    ports = endpoints_by_port(trace)
    traffic: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for d in trace:
        if d["t"] >= since and d["port"] in ports:
            traffic[ports[d["port"]]].append(d)
    logged, current = _device_log(lines, since)
    done = sorted(current.items(), key=lambda item: -item[1])
    for ep, at in current.items():  # what follows Current (idle until the end) is no tail
        traffic[ep] = [d for d in traffic[ep] if d["t"] <= since + at + 0.05]
    everyone = {ep: _silences(traffic[ep], since) for ep in traffic}
    return {
        "slowest": {ep: {"current_s": round(at, 2),
                         "milestones": _milestones(traffic[ep], since),
                         "silences": everyone.get(ep, []),
                         "log": logged.get(ep, [])[-16:]}
                    for ep, at in done[:slowest]},
        "silences_over_all_devices": _silence_kinds(everyone),
        "not_current": sorted(set(traffic) - set(current)),
    }


def _device_log(lines: list[tuple[float, str]], since: float
                ) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Per endpoint: its log lines after `since` ("+s text") and when it went Current."""
    ids: dict[str, str] = {}
    logged: dict[str, list[str]] = collections.defaultdict(list)
    current: dict[str, float] = {}
    for at, line in lines:
        found = DEVICE_LINE.search(line)
        if found is not None:
            ids[found.group(2)] = found.group(3)
            endpoint, text = found.group(3), found.group(4).strip()
        elif (other := EXECUTOR_LINE.search(line)) is not None and other.group(1) in ids:
            endpoint, text = ids[other.group(1)], other.group(2).strip()
        else:
            continue
        if at < since:
            continue
        logged[endpoint].append(f"+{at - since:.2f}s {text[:150]}")
        if CURRENT in line:
            current[endpoint] = at - since
    return logged, current


def _milestones(traffic: list[dict[str, Any]], since: float) -> dict[str, float | None]:
    """Seconds after the commit of the first datagram of each kind (None: never)."""
    def first(test: Any) -> float | None:
        hit = next((d["t"] for d in traffic if test(d)), None)
        return None if hit is None else round(hit - since, 2)

    def last_block(d: dict[str, Any], name: str) -> bool:
        return name in d and not d[name][1] and d["fate"] != "dropped"

    return {
        "uri_write": first(lambda d: d.get("path") == "/5/0/1" and d["way"] == "down"),
        "first_block": first(lambda d: d.get("path") == "/5/0/0" or "block2" in d),
        "last_block_through": first(lambda d: (d["way"] == "down" and last_block(d, "block2"))
                                    or (d["way"] == "up" and last_block(d, "block1"))),
        "execute": first(lambda d: d.get("path") == "/5/0/2" and d["way"] == "down"),
        "execute_through": first(lambda d: d.get("path") == "/5/0/2" and d["way"] == "down"
                                 and d["fate"] != "dropped"),
        "register": first(lambda d: "ep" in d),
        "register_through": first(lambda d: "ep" in d and d["fate"] != "dropped"),
        "last_datagram": round(traffic[-1]["t"] - since, 2) if traffic else None,
    }


def _silences(traffic: list[dict[str, Any]], since: float) -> list[str]:
    """Every gap over GAP seconds between a device's datagrams: when, how long, what
    came before (with its fate) and what ended it."""
    out = []
    for before, after in itertools.pairwise(traffic):
        gap = after["t"] - before["t"]
        if gap > GAP:
            out.append(f"+{before['t'] - since:.2f}s {gap:.2f}s after [{describe(before)}] "
                       f"until [{describe(after)}]")
    return out


def _silence_kinds(everyone: dict[str, list[str]]) -> dict[str, Any]:
    """Silences over all devices by the datagram before them (numbers stripped):
    count and total seconds."""
    kinds: dict[str, list[float]] = collections.defaultdict(list)
    for silences in everyone.values():
        for line in silences:
            found = re.match(r"\+\S+ (\S+)s after \[(.*?)\] until", line)
            if found is None:
                continue
            what = re.sub(r"(mid|obs)=\d+ ?", "", found.group(2))
            what = re.sub(r"/fw/\S+", "/fw/TOKEN", what)
            what = re.sub(r"block([12])=\d+", r"block\1=N", what)
            kinds[what.strip()].append(float(found.group(1)))
    ranked = sorted(kinds.items(), key=lambda item: -sum(item[1]))
    return {what: {"count": len(gaps), "total_s": round(sum(gaps), 1),
                   "max_s": round(max(gaps), 2)} for what, gaps in ranked[:15]}
