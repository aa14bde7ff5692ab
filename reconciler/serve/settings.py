"""The controller's settings: one pydantic model read from CLI flags and `FOTA_*`
environment variables (for tests and operators who need short or long deadlines).

Built by `serve.cmd` (and tests); `engine_config()` hands the engine its frozen values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.engine import EngineConfig

ENV_PREFIX = "FOTA_"


class ControllerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str = "."
    branch: str | None = None
    state: Path = Path(".fota/state.db")
    coap_host: str = "127.0.0.1"
    coap_port: int = Field(5683, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    public_uri: str | None = None
    tokens: tuple[str, ...] = ()
    # the work queue
    workers: int = Field(64, ge=1)  # reconciles running at once
    resync_interval: float = Field(60.0, gt=0)  # every device is looked at this often
    error_backoff: float = Field(1.0, gt=0)  # first delay after a failed reconcile
    error_backoff_max: float = Field(60.0, gt=0)
    poll_source: float = Field(10.0, gt=0)  # git poll interval
    request_timeout: float = Field(20.0, gt=0)  # one CoAP request to a device
    execute_timeout: float = Field(5.0, gt=0)  # devices often reboot before answering
    # A queue-mode device listens this long after it last spoke (OMA: MAX_TRANSMIT_WAIT);
    # the controller contacts it only inside that window.
    awake_window: float = Field(93.0, gt=0)
    # the update state machine (see reconciler.engine.policy.EngineConfig)
    max_retries: int = Field(3, ge=0)
    backoff_base: float = Field(30.0, ge=0)
    backoff_max: float = Field(3600.0, ge=0)
    block_size: int = Field(256, ge=16)
    seconds_per_block: float = Field(4.0, ge=0)
    min_download_time: float = Field(120.0, ge=0)
    update_timeout: float = Field(900.0, gt=0)
    poll_interval: float = Field(30.0, gt=0)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            max_retries=self.max_retries, backoff_base=self.backoff_base,
            backoff_max=self.backoff_max, block_size=self.block_size,
            seconds_per_block=self.seconds_per_block, min_download_time=self.min_download_time,
            update_timeout=self.update_timeout, poll_interval=self.poll_interval,
        )

    @classmethod
    def load(cls, overrides: Mapping[str, object] | None = None,
             environ: Mapping[str, str] | None = None) -> ControllerSettings:
        """Defaults, then `FOTA_<FIELD>` variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = tuple(raw.split(",")) if name == "tokens" else raw
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.model_validate(values)


def describe(exc: ValidationError, environ: Mapping[str, str] | None = None) -> str:
    """A pydantic error of the settings as one line naming the setting, where its value
    came from (a `FOTA_*` variable or a flag) and what was wrong with it."""
    env = os.environ if environ is None else environ
    parts = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(p) for p in error["loc"]) or "settings"
        var = ENV_PREFIX + name.upper()
        origin = f" (from {var})" if var in env else ""
        parts.append(f"invalid {name}{origin}: {error['msg']}, got {error['input']!r}")
    return "; ".join(parts)
