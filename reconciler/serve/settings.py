"""`fota serve`'s settings: one pydantic model read from CLI flags and `FOTA_*`
environment variables (for tests and operators who need short or long deadlines).

The process's own settings (repository, ports, state file, tokens, polling) are fields
here; the reconcile loop's tunables are the fields of `ControllerConfig` and the engine's
those of `EngineConfig`, composed as `controller` (with its `engine`) and never repeated:
every one of their fields is a setting under its own flat name (`FOTA_UPDATE_TIMEOUT`,
`workers`), found by walking the dataclasses. Built by `serve.cmd` (and tests).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.controller.config import ControllerConfig
from reconciler.engine import EngineConfig
from reconciler.store import is_database_url
from reconciler.store.tcp_timeouts import TcpTimeouts, with_tcp_timeouts

ENV_PREFIX = "FOTA_"
# The engine's values are durations and counts (EngineConfig carries no bounds of its own):
# none may be negative, these must be above zero or a floor.
_ENGINE_FLOORS: dict[str, tuple[float, bool]] = {  # name -> (floor, floor allowed)
    "update_timeout": (0, False), "poll_interval": (0, False), "block_size": (16, True)}
_PG = TcpTimeouts()  # the PostgreSQL connections' defaults


class ServeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str = Field(".", description="the desired-state git repository, a path or a URL")
    branch: str | None = Field(None, description=(
        "the branch to follow; unset: `main`, for a URL the remote's default branch "
        "(never the working tree's HEAD)"))
    state: Path | str = Field(Path(".fota/state.db"), description=(
        "the SQLite state file (one `fota serve` per file; back it up with "
        "`sqlite3 .backup`), or a PostgreSQL database as a `postgresql://` URL "
        "(its password best in `PGPASSWORD` or `~/.pgpass`)"))
    cache_dir: Path | None = Field(None, description=(
        "the parsed-manifest cache (and a URL repository's mirror); unset: `cache` "
        "beside the state file, or `.fota/cache` with a PostgreSQL state"))
    coap: Literal["on", "off"] = Field("on", description=(
        "`off`: no plain CoAP listener at all, nothing bound on the CoAP port (needs "
        "`coaps`: every device registers and downloads inside a DTLS-PSK session)"))
    coap_host: str = Field("127.0.0.1", description="address the LwM2M server listens on")
    coap_port: int = Field(5683, ge=0, le=65535, description="its UDP port (0: any free one)")
    http_host: str = Field("127.0.0.1", description=(
        "address the HTTP API listens on; off loopback only with a token"))
    http_port: int = Field(8080, ge=0, le=65535, description="its TCP port (0: any free one)")
    public_uri: str | None = Field(None, description=(
        "`coap://HOST:PORT` devices download firmware from; unset: the LwM2M address"))
    coaps: str | None = Field(None, description=(
        "HOST:PORT of the CoAPs (DTLS-PSK) listener beside CoAP, or instead of it with "
        "`coap` off (port 5684 by custom); unset: none"))
    coaps_public_uri: str | None = Field(None, description=(
        "`coaps://HOST:PORT` secured devices download firmware from; unset: the CoAPs "
        "address"))
    dtls_idle_timeout: float = Field(7 * 24 * 3600.0, gt=0, description=(
        "seconds a DTLS session may stay silent before it is closed (NB-IoT devices "
        "sleep for days on one)"))
    coap_rto: Literal["adaptive", "fixed"] = Field("adaptive", description=(
        "retransmission timeouts of the server's own Confirmables (writes, reads, "
        "Execute, pushed blocks): `adaptive` estimates each device's round trip (CoCoA: "
        "2 s until known, 0.5-32 s), `fixed` is RFC 7252's 2-3 s doubling"))
    tokens: tuple[str, ...] = Field((), description=(
        "accepted `X-API-Token` values (the variable takes them comma-separated, which "
        "keeps them out of `ps`)"))
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["human", "json"] = Field("human", description=(
        "`human` lines, or `json`: one object per line with the device, endpoint, "
        "collection and revision where known, for log shippers"))
    poll_source: float = Field(10.0, gt=0, description=(
        "seconds between polls of the repository (a local one is also watched)"))
    # A queue-mode device listens this long after it last spoke (OMA: MAX_TRANSMIT_WAIT);
    # the controller contacts it only inside that window.
    awake_window: float = Field(93.0, gt=0, description=(
        "seconds a queue-mode device listens after it last spoke (MAX_TRANSMIT_WAIT)"))
    # The event log and its feed (GET /events): bounded in size, streams and time.
    events_max_age: float = Field(30 * 86400.0, gt=0, description=(
        "seconds an event is kept in the state file (a device's newest 100 stay while "
        "it is in the desired state)"))
    events_max_count: int = Field(1_000_000, ge=1, description=(
        "events kept behind the newest (beside each device's newest 100)"))
    events_prune_interval: float = Field(60.0, gt=0, description=(
        "seconds between prunes of the event log (in short slices, off the event loop)"))
    events_max_streams: int = Field(32, ge=1, description=(
        "`GET /events` streams open at once; beyond: 503 with `Retry-After`"))
    events_keepalive: float = Field(15.0, gt=0, description=(
        "seconds of silence on an event stream before a keepalive comment"))
    events_send_timeout: float = Field(30.0, gt=0, description=(
        "seconds an event stream client may take no data before it is dropped"))
    credentials: Path | None = Field(None, description=(
        "the PSK credentials file (identity, key, endpoint; docs/security.md), re-read on "
        "SIGHUP and when it changes; unset: no credentials"))
    security_default: Literal["psk", "none"] = Field("none", description=(
        "what an endpoint whose manifests say no `security` requires: `psk` or `none`"))
    node_id: str | None = Field(None, min_length=1, description=(
        "this node's name in a database several nodes share, each its own "
        "(docs/scaling.md); unset: the only writer of its store, named by host name and "
        "process id"))
    lease: float = Field(10.0, gt=0, description=(
        "seconds a node acts on devices without hearing from its store: one cut off "
        "stops within this and says so in /readyz"))
    # libpq's TCP timeouts on every PostgreSQL connection (store.pg.connection): a
    # database behind a dead network path fails a call within ~1 minute, not after the
    # kernel's timeouts (minutes to hours). A parameter the `state` URL names itself
    # (`?keepalives=0`) wins.
    pg_keepalives_idle: int = Field(_PG.keepalives_idle, ge=1, description=(
        "PostgreSQL over TCP: seconds a connection is idle before the first keepalive "
        "probe (libpq `keepalives_idle`)"))
    pg_keepalives_interval: int = Field(_PG.keepalives_interval, ge=1, description=(
        "seconds between unanswered keepalive probes (libpq `keepalives_interval`)"))
    pg_keepalives_count: int = Field(_PG.keepalives_count, ge=1, description=(
        "unanswered probes after which the connection is dropped (libpq "
        "`keepalives_count`)"))
    pg_tcp_user_timeout: int = Field(_PG.tcp_user_timeout, ge=0, description=(
        "milliseconds sent data may go unacknowledged before the connection is dropped "
        "(libpq `tcp_user_timeout`; 0: the kernel's own, ~15 minutes)"))
    controller: ControllerConfig = Field(default_factory=ControllerConfig)

    @field_validator("state")
    @classmethod
    def _file_or_database(cls, value: Path | str) -> Path | str:
        # A URL stays text (a Path would fold its `//`); anything else names a file.
        return value if is_database_url(value) else Path(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("coaps")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ValueError("expected HOST:PORT")
        return value

    @model_validator(mode="after")
    def _some_listener(self) -> ServeSettings:
        # Refused here, not at bind time: a server without any listener (or with a
        # firmware URI no listener serves) is a configuration error, said in one line.
        if self.coap == "off" and self.coaps is None:
            raise PydanticCustomError("listeners", "--coap off (FOTA_COAP=off) needs "
                                      "--coaps HOST:PORT (FOTA_COAPS): devices would have "
                                      "no listener at all")
        if self.coap == "off" and self.public_uri is not None:
            raise PydanticCustomError("listeners", "--public-uri (FOTA_PUBLIC_URI) names "
                                      "the plain CoAP firmware URI, and --coap off runs "
                                      "none: use FOTA_COAPS_PUBLIC_URI")
        return self

    @property
    def plain_port(self) -> int | None:
        """The plain CoAP port to bind, or None with `coap` off."""
        return None if self.coap == "off" else self.coap_port

    def coaps_address(self) -> tuple[str, int] | None:
        """(host, port) of the CoAPs listener, or None."""
        if self.coaps is None:
            return None
        host, _, port = self.coaps.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("controller")
    @classmethod
    def _engine_bounds(cls, value: ControllerConfig) -> ControllerConfig:
        for f in dataclasses.fields(EngineConfig):
            number = getattr(value.engine, f.name)
            floor, inclusive = _ENGINE_FLOORS.get(f.name, (0, True))
            if number < floor or (number == floor and not inclusive):
                raise PydanticCustomError(
                    "engine_bound", "Input should be {bound} {floor}",
                    {"name": f.name, "value": number, "floor": floor,
                     "bound": "greater than or equal to" if inclusive else "greater than"})
        return value

    def engine_config(self) -> EngineConfig:
        return self.controller.engine

    def store_location(self) -> Path | str:
        """What the store opens: the state file, or the database URL with the `pg_*`
        TCP timeouts it does not name itself."""
        if isinstance(self.state, Path):
            return self.state
        return with_tcp_timeouts(self.state, TcpTimeouts(
            self.pg_keepalives_idle, self.pg_keepalives_interval, self.pg_keepalives_count,
            self.pg_tcp_user_timeout))

    @classmethod
    def load(cls, overrides: Mapping[str, object] | None = None,
             environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Defaults, then `FOTA_<NAME>` variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        flat: dict[str, object] = {}
        for name, _ in setting_names():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                flat[name] = tuple(raw.split(",")) if name == "tokens" else raw
        flat.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.model_validate(_nest(flat))


def setting_names() -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every setting's flat name and where it lives in the model (its path)."""
    for name in ServeSettings.model_fields:
        if name != "controller":
            yield name, (name,)
    for f in dataclasses.fields(ControllerConfig):
        if f.name != "engine":
            yield f.name, ("controller", f.name)
    for f in dataclasses.fields(EngineConfig):
        yield f.name, ("controller", "engine", f.name)


def _nest(flat: Mapping[str, object]) -> dict[str, Any]:
    paths = dict(setting_names())
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = paths.get(name, (name,))  # an unknown name is refused by the model
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def describe(exc: ValidationError, environ: Mapping[str, str] | None = None) -> str:
    """A pydantic error of the settings as one line naming the setting, where its value
    came from (a `FOTA_*` variable or a flag) and what was wrong with it."""
    env = os.environ if environ is None else environ
    parts = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        if not error["loc"]:  # a rule across settings: its message names them
            parts.append(error["msg"])
            continue
        if error["type"] == "engine_bound":  # raised for the whole engine: name the field
            name, given = str(ctx["name"]), ctx["value"]
        else:
            name, given = str(error["loc"][-1]) if error["loc"] else "settings", error["input"]
        var = ENV_PREFIX + name.upper()
        origin = f" (from {var})" if var in env else ""
        parts.append(f"invalid {name}{origin}: {error['msg']}, got {given!r}")
    return "; ".join(parts)
