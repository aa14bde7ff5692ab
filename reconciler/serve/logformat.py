"""`fota serve --log-format`: human lines (the default) or one JSON object per line.

`formatter(kind)` gives the `logging.Formatter` that `serve.cmd` puts on its handler.
The JSON one writes `time` (UTC, ISO 8601), `level`, `logger`, `message`, the device,
endpoint, collection and revision a line is about where known (`observe.logcontext`, or
a log call's `extra=`), and a traceback as `exception`; newlines inside a message are
escaped, so a shipper reads exactly one record per line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from reconciler.observe import logcontext

HUMAN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update(logcontext.fields_now())
        for name in logcontext.FIELDS:
            given = getattr(record, name, None)
            if isinstance(given, str) and given:
                entry[name] = given
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(HUMAN)
