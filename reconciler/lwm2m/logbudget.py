"""A budget for the log lines an outsider can cause, so a flood cannot fill the disk.

Every datagram a stranger sends can make a logger speak: aiocoap's own `coap-server`
logger tells each CoAP ping, duplicate or unmatched response at INFO (30,000 junk
datagrams made 28,561 lines), its module loggers warn of odd messages, and ours in
`reconciler.lwm2m` log refused notifications and failed requests. `LogBudget` is a
logging filter that lets each (logger, level) through at most `burst` times per
`interval` and counts the rest; the count is told in one WARNING when the next window
opens, or at `flush` (the server's sweeper, and its stop). `guard` puts it on every
aiocoap logger and every logger of this package; `Lwm2mServer` guards on start and
unguards on stop. The controller guards its own loggers from WARNING up (a device's
failures: `level`), leaving its INFO account of a rollout alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

BURST = 20  # records per (logger, level) and interval before the rest are only counted
INTERVAL = 60.0
GUARDED = ("coap", "coap-server", "aiocoap", "reconciler.lwm2m")
_SUMMARY = "budget_summary"  # a record attribute: the filter's own summaries pass


class LogBudget(logging.Filter):
    def __init__(self, *, burst: int = BURST, interval: float = INTERVAL,
                 level: int = logging.NOTSET,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._burst, self._interval, self._clock = burst, interval, clock
        self._level = level  # records below it pass uncounted
        # (logger name, level) -> [window start, records let through, records dropped]
        self._windows: dict[tuple[str, int], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._level or getattr(record, _SUMMARY, False):
            return True
        key, now = (record.name, record.levelno), self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self._interval:
            if window is not None and window[2]:
                self._tell(key, int(window[2]), now - window[0])
            window = self._windows[key] = [now, 0, 0]
        if window[1] < self._burst:
            window[1] += 1
            return True
        window[2] += 1
        return False

    def flush(self, *, force: bool = False) -> None:
        """Tell the counts of windows that ended (all of them with `force`)."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if force or now - window[0] >= self._interval:
                del self._windows[key]
                if window[2]:
                    self._tell(key, int(window[2]), now - window[0])

    def _tell(self, key: tuple[str, int], dropped: int, span: float) -> None:
        name, level = key
        logging.getLogger(name).warning(
            "%d more %s record(s) of this logger suppressed in the last %.0f s (at most "
            "%d a window: a flood of odd datagrams?)", dropped, logging.getLevelName(level),
            span, self._burst, extra={_SUMMARY: True})


def guard(budget: LogBudget, prefixes: tuple[str, ...] = GUARDED) -> Callable[[], None]:
    """Put `budget` on every logger named by `prefixes` (and their children) there is
    now; returns the undo."""
    names = {name for name in logging.Logger.manager.loggerDict
             if any(name == p or name.startswith(p + ".") for p in prefixes)}
    loggers = [logging.getLogger(name) for name in sorted(names | set(prefixes))]
    for logger in loggers:
        logger.addFilter(budget)

    def unguard() -> None:
        for logger in loggers:
            logger.removeFilter(budget)

    return unguard
