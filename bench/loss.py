"""Loss benchmark (issue 8), printed as one JSON object.

`fota serve` and a simulated fleet (`fota simulate`, 100 devices, 64 KiB image) talk
through bench/udp_proxy.py, which drops 5 % of datagrams either way and duplicates 5 %
of the rest; `--public-uri` points the devices' downloads at the proxy too. The same
rollout (target 1.0 -> 2.0) runs once through a lossless proxy and once through the
lossy one: time from the commit to every device Current, and the ratio (goal <= 3).
Also reported, from the server's log: how the lossy rollout's devices got there
(retries, timeouts, errors), to tell where the time went. And the peer, in the same run
(`libcoap_downloads.py`): the same number of downloads of the same image between
libcoap's own client and server through the same proxy, lossless and lossy, i.e. what
CoAP with RFC 7252's default timers costs on this link (`--no-peer` skips it).

Each delivery (`--delivery`: pull, the devices' own Block2 GETs; push, the server's
Block1 PUTs to devices whose /5/0/9 says push only) runs with each of the server's
retransmission timers (`--coap-rto`: `fixed`, RFC 7252's 2-3 s doubling, and
`adaptive`, the per-device CoCoA estimate), lossless then lossy, all in one run; each
pair gives its own ratio. Only the server's own Confirmables (Object 5 writes, reads,
Observe, Execute and, in push, every block) follow `--coap-rto`; what the devices send
(their Block2 GETs, Register, Update) keeps the devices' RFC 7252 timers.

    .venv/bin/python bench/loss.py [--devices 100] [--loss 0.05] [--dup 0.05]
        [--patience 1200] [--block-size 512] [--delivery pull push]
        [--coap-rto fixed adaptive] [--rtt 0] [--trace DIR] [--slowest 5]

`--rtt MS` gives the link a round trip: every proxy of the run (lossless and lossy, and
the peer's) holds each datagram MS/2 milliseconds each way. On loopback a round trip is
~1 ms, so every retransmission timer (the devices' 2-3 s, the server's RTO) is hundreds
of round trips and the ratio is mostly "timer / 1 ms"; on NB-IoT or LTE-M (0.2 to 10 s)
the lossless rollout itself scales with the round trip and the timers weigh less.

`--trace DIR` keeps, per rollout, the server's log and the proxy's datagram trace in DIR
and adds `tail` to each lossy rollout's figures: the slowest devices' milestones and
silences (bench/loss_tail.py), to tell where the tail's time goes.

`--block-size` is the simulated devices' Block2 size: a device that asks for 1024-byte
blocks needs half the exchanges, so half the losses, each costing it an RFC 7252
retransmission timeout (2-3 s); the server serves what the device asks for (RFC 7959 lets
it answer only with a smaller block, never a larger one).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import libcoap_downloads
import loss_tail
import procs
from rollout import BLOCK, CURRENT, IMAGE_SIZE, Server, make_repo, roll_out

PROXY = str(Path(__file__).with_name("udp_proxy.py"))
GOAL = 3.0


def _what_happened(lines: list[tuple[float, str]], since: float) -> dict[str, Any]:
    """Device log lines after the commit, by what they say (numbers stripped), and the
    devices that took longest with their history."""
    kinds: collections.Counter[str] = collections.Counter()
    per_device: dict[str, list[str]] = collections.defaultdict(list)
    for at, line in lines:
        found = re.search(r"reconciler\.\w+: (\S+) \([^)]*\): (.*)", line)
        if at < since or found is None:
            continue
        text = re.sub(r"\d+(\.\d+)?", "N", found.group(2).strip())
        kinds[text[:120]] += 1
        per_device[found.group(1)].append(f"+{at - since:.1f}s {found.group(2).strip()[:160]}")
    warnings = collections.Counter(
        re.sub(r"\d+(\.\d+)?", "N", line.split(": ", 1)[-1].strip())[:120]
        for at, line in lines if at >= since and (" WARNING " in line or " ERROR " in line))
    slowest = sorted(per_device.items(), key=lambda item: item[1][-1], reverse=True)
    return {"seconds_in_state": _time_in_states(lines, since),
            "device_log_kinds": dict(kinds.most_common(25)),
            "warnings": dict(warnings.most_common(10)),
            "longest_histories": {d: h[-12:] for d, h in
                                  sorted(per_device.items(), key=lambda i: -len(i[1]))[:3]},
            "devices_logged": len(slowest)}


def _time_in_states(lines: list[tuple[float, str]], since: float) -> dict[str, Any]:
    """Per state a device left after the commit ("Downloading -> Updating"): how long
    devices spent in it (median, max, total over the fleet), from the transition lines."""
    entered: dict[str, float] = {}
    spent: dict[str, list[float]] = collections.defaultdict(list)
    for at, line in lines:
        found = re.search(r"reconciler\.\w+: (\S+) \([^)]*\): (\w+) -> (\w+)", line)
        if at < since or found is None:
            continue
        device, left = found.group(1), found.group(2)
        spent[left].append(at - entered.get(device, since))
        entered[device] = at
    return {state: {"median": round(sorted(t)[len(t) // 2], 2), "max": round(max(t), 2),
                    "total": round(sum(t), 1), "devices": len(t)}
            for state, t in spent.items()}


async def rollout(devices: int, loss: float, dup: float, patience: float,
                  tmp: Path, block: int = BLOCK, delivery: str = "pull",
                  coap_rto: str = "adaptive", trace: Path | None = None,
                  slowest: int = 5, rtt_ms: float = 0.0) -> dict[str, Any]:
    endpoints = [f"sim-{i:05d}" for i in range(devices)]
    repo = make_repo(tmp / "repo", endpoints)
    port, proxy_port = procs.free_udp_port(), procs.free_udp_port()
    server = Server(tmp / "repo", tmp / "state.db", port, {"FOTA_COAP_RTO": coap_rto})
    server.args += ["--public-uri", f"coap://127.0.0.1:{proxy_port}"]
    name = f"{delivery}-{coap_rto}-{'lossy' if loss or dup else 'lossless'}"
    traced = ["--trace", str(trace / f"{name}.trace")] if trace is not None else []
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, PROXY, str(proxy_port), str(port), "--loss", str(loss), "--dup",
        str(dup), "--delay", str(rtt_ms / 2), "--stats", str(tmp / "proxy.json"), *traced)
    cpu = procs.children_cpu_s()
    await server.start()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server",
        f"coap://127.0.0.1:{proxy_port}", "--repo", str(tmp / "repo"), "--count",
        str(devices), "--version", "1.0", "--block-size", str(block),
        *(["--push"] if delivery == "push" else []), stdout=asyncio.subprocess.DEVNULL)
    try:
        committed = await roll_out(server, repo, devices, 300, patience, f"loss {loss}")
    finally:
        await procs.stop(sim, 30)
        await server.stop()
        await procs.stop(proxy, 30)
    times = sorted(at - committed for at, line in server.lines
                   if at >= committed and CURRENT in line)
    result: dict[str, Any] = {
        "loss": loss, "duplication": dup, "delivery": delivery, "coap_rto": coap_rto,
        "rtt_ms": rtt_ms, "current": len(times),
        "commit_to_all_current_s": round(times[-1], 2) if len(times) == devices else None,
        "commit_to_median_current_s": round(times[len(times) // 2], 2) if times else None,
        "proxy": json.loads((tmp / "proxy.json").read_text())
        if (tmp / "proxy.json").exists() else None,
        "children_cpu_s": round(procs.children_cpu_s() - cpu, 1)}  # server, simulator, proxy
    result["what_happened"] = _what_happened(server.lines, committed)
    if trace is not None:
        (trace / f"{name}.log").write_text(
            "".join(f"{at:.3f} {line}" for at, line in server.lines))
        result["tail"] = loss_tail.anatomy(
            server.lines, loss_tail.read_trace(trace / f"{name}.trace"), committed, slowest)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--dup", type=float, default=0.05)
    parser.add_argument("--block-size", type=int, default=BLOCK,
                        help="the simulated devices' Block2 size (16..1024)")
    parser.add_argument("--patience", type=float, default=1200.0,
                        help="seconds after the commit before a rollout is reported as is")
    parser.add_argument("--delivery", nargs="+", choices=("pull", "push"),
                        default=["pull", "push"], help="the deliveries to run")
    parser.add_argument("--coap-rto", nargs="+", choices=("fixed", "adaptive"),
                        default=["fixed", "adaptive"], help="the server's timers to run")
    parser.add_argument("--trace", type=Path, default=None,
                        help="keep logs and datagram traces here; adds each run's tail")
    parser.add_argument("--slowest", type=int, default=5,
                        help="with --trace: how many of the slowest devices to take apart")
    parser.add_argument("--rtt", type=float, default=0.0,
                        help="ms of round trip added by every proxy (half each way)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip libcoap's client and server through the same proxy")
    args = parser.parse_args()
    if args.trace is not None:
        args.trace.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs: dict[str, dict[str, Any]] = {}
    for delivery in args.delivery:
        for coap_rto in args.coap_rto:
            runs.setdefault(delivery, {})[coap_rto] = await _pair(args, delivery, coap_rto)
    peer: dict[str, Any] = {"skipped": "--no-peer"}
    if not args.no_peer:
        with tempfile.TemporaryDirectory() as c:
            peer = await libcoap_downloads.compare(
                args.devices, args.loss, args.dup, Path(c), args.block_size, IMAGE_SIZE,
                args.patience, args.rtt / 1000)
    print(json.dumps({"devices": args.devices, "image_bytes": IMAGE_SIZE,
                      "block_size": args.block_size, "rtt_ms": args.rtt, "goal": GOAL,
                      "ratios": {d: {r: run["ratio"] for r, run in by_rto.items()}
                                 for d, by_rto in runs.items()},
                      "runs": runs, "libcoap": peer, "bench_s": round(time.time() - started),
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))


async def _pair(args: argparse.Namespace, delivery: str, coap_rto: str) -> dict[str, Any]:
    """One delivery with one of the server's timers: lossless, then lossy, and the ratio."""
    with tempfile.TemporaryDirectory() as a:
        lossless = await rollout(args.devices, 0.0, 0.0, args.patience, Path(a),
                                 args.block_size, delivery, coap_rto, args.trace,
                                 args.slowest, args.rtt)
    with tempfile.TemporaryDirectory() as b:
        lossy = await rollout(args.devices, args.loss, args.dup, args.patience, Path(b),
                              args.block_size, delivery, coap_rto, args.trace, args.slowest,
                              args.rtt)
    ratio = None
    if lossless["commit_to_all_current_s"] and lossy["commit_to_all_current_s"]:
        ratio = round(lossy["commit_to_all_current_s"] / lossless["commit_to_all_current_s"], 2)
    print(f"{delivery} {coap_rto}: lossless {lossless['commit_to_all_current_s']} s, lossy "
          f"{lossy['commit_to_all_current_s']} s, ratio {ratio}", file=sys.stderr)
    return {"lossless": lossless, "lossy": lossy, "ratio": ratio,
            "downloading_s": _downloading(lossless, lossy)}


def _downloading(lossless: dict[str, Any], lossy: dict[str, Any]) -> dict[str, Any]:
    """Our devices' Downloading phase (median and longest) in each rollout and the
    lossy/lossless ratios: the part of the rollout that libcoap's downloads through the
    same proxy compare with."""
    out: dict[str, Any] = {}
    for figure in ("median", "max"):
        spans = [run["what_happened"]["seconds_in_state"].get("Downloading", {}).get(figure)
                 for run in (lossless, lossy)]
        out[figure] = {"lossless_s": spans[0], "lossy_s": spans[1],
                       "ratio": round(spans[1] / spans[0], 2) if spans[0] and spans[1]
                       else None}
    return out


if __name__ == "__main__":
    asyncio.run(main())
