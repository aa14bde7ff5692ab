"""Which device a log line is about, for `fota serve --log-format json`.

`bound(device=..., endpoint=..., collection=..., revision=...)` sets context variables for
the task working on one device (the controller's reconcile binds them around each
reconcile, so every line its decider and executor log carries them); `fields_now()` is what
the JSON formatter (`serve.logformat`) adds to each line. A log call may also pass the
same names in `extra=`. Context variables follow tasks, so concurrent reconciles of
different devices never mix their fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("device", "endpoint", "collection", "revision")
_CONTEXT: ContextVar[Mapping[str, str] | None] = ContextVar("fota_log_context", default=None)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Within the block, log lines of this task carry `fields` (None ones left out)."""
    token = _CONTEXT.set({**fields_now(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def fields_now() -> Mapping[str, str]:
    """The fields bound in the running task ({} outside any `bound` block)."""
    return _CONTEXT.get() or {}
