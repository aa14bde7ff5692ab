"""The manifest schema (pydantic, strict, unknown keys refused) and its error wording.

Three documents live under `manifests/<collection>/`: `collection.yaml`
(`CollectionDoc`), `images.yaml` (`ImagesDoc`) and `devices/*.yaml` (`DevicesDoc`, whose
entries are checked in bulk through `DEVICE_LIST`). `schema_problems` turns pydantic's
errors into `(line, field.path, message)`. Used by `reconciler.sources.parsing`.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

from reconciler.model.ids import encode_base24
from reconciler.sources.durations import format_duration, parse_duration
from reconciler.sources.problems import LocalProblem
from reconciler.sources.yamlload import child_path

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
Text = Annotated[str, Field(min_length=1)]
EMPTY_IMAGE = "an empty (0-byte) file is not a firmware image"
_SALVAGE_ROUNDS = 4
T = TypeVar("T")
Tags = dict[str, str]


class FirmwareSpec(BaseModel):
    model_config = _STRICT
    management: Literal["device", "collection", "disabled"] = "disabled"
    target: Text | None = None
    driftPolicy: Literal["correct", "report"] = "correct"


# A window must hold a whole install: an Execute sent as it opens may take the
# controller's default update_timeout (15 minutes) before the device is back, and a
# shorter window would let installs run past it routinely (documented in manifests.md).
MIN_WINDOW_SECONDS = 900.0


class WindowSpec(BaseModel):
    model_config = _STRICT
    name: Text
    cron: Text
    duration: Text
    timeZone: Text
    gates: Literal["download", "execute", "both"] = "execute"
    tags: Tags = {}

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as exc:  # its own words: "Bad minute", "Wrong number of fields"
            raise ValueError(f"not a cron expression ({exc}): write five fields like "
                             f'"0 2 * * *" (minute hour day month weekday)') from None
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) < MIN_WINDOW_SECONDS:
            raise ValueError(f"a window shorter than {format_duration(MIN_WINDOW_SECONDS)} "
                             f"cannot hold an install (the default update_timeout)")
        return value

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: write an IANA name like "
                             f'"Europe/Oslo" or "UTC"') from None
        return value


def _count_or_percent(value: Any) -> Any:
    if value is None or (type(value) is int and value >= 1):
        return value
    match = _PERCENT.match(value.strip()) if isinstance(value, str) else None
    if match is None or not 0 < float(match.group(1)) <= 100:
        raise ValueError('write a count of at least 1 like 5, or a percentage like "10%"')
    return value


def _percent(value: str) -> str:
    match = _PERCENT.match(value.strip())
    if match is None or not 0 < float(match.group(1)) <= 100:
        raise ValueError('write a percentage from "0.1%" to "100%", like "5%"')
    return value


def _duration(value: str) -> str:
    parse_duration(value)  # its ValueError says how to write one
    return value


MAX_WAVES = 20


class WaveSpec(BaseModel):
    model_config = _STRICT
    name: Text
    tags: Tags = {}
    share: str | None = None  # of the devices the tags select: "5%"
    soak: str = "0s"
    minSuccess: str | None = None
    failureThreshold: Any = None  # count or percentage of the wave

    @field_validator("share", "minSuccess")
    @classmethod
    def _share(cls, value: str | None) -> str | None:
        return None if value is None else _percent(value)

    @field_validator("soak")
    @classmethod
    def _soak(cls, value: str) -> str:
        return _duration(value)

    @field_validator("failureThreshold")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        return _count_or_percent(value)


class RolloutSpec(BaseModel):
    model_config = _STRICT
    maxConcurrent: Annotated[int, Field(ge=1)] | None = None
    failureThreshold: Any = None  # a count (int) or a percentage ("10%"), checked below
    paused: bool = False
    windows: list[WindowSpec] = []
    retry: Annotated[int, Field(ge=0)] = 0
    # Bounded: the gate walks the waves on every decision.
    waves: Annotated[list[WaveSpec], Field(max_length=MAX_WAVES)] = []

    @field_validator("failureThreshold")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        return _count_or_percent(value)

    @field_validator("waves")
    @classmethod
    def _unique_names(cls, waves: list[WaveSpec]) -> list[WaveSpec]:
        names = [wave.name for wave in waves]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"wave names must be unique: {', '.join(repeated)} repeated")
        _shares_fit(waves)
        return waves


def _shares_fit(waves: list[WaveSpec]) -> None:
    """Waves with the same selector share its devices: their shares add up to 100% at
    most (`engine.waves` lays them end to end; past 100% a wave would get fewer)."""
    groups: dict[tuple[tuple[str, str], ...], list[WaveSpec]] = {}
    for wave in waves:
        if wave.share is not None:
            groups.setdefault(tuple(sorted(wave.tags.items())), []).append(wave)
    for group in groups.values():
        total = sum(float(w.share.strip().rstrip("%")) for w in group if w.share)
        if total > 100.0:
            parts = ", ".join(f"{w.name} {w.share}" for w in group)
            raise ValueError(f"the shares of waves selecting the same devices add up to "
                             f"{total:g}% ({parts}); at most 100%")


Security = Literal["psk", "none"]  # reconciler.model.desired.SecurityMode


class CollectionDoc(BaseModel):
    model_config = _STRICT
    collectionId: Text | None = None
    name: str = ""
    tags: Tags = {}
    firmware: FirmwareSpec = FirmwareSpec()
    security: Security | None = None  # absent: the server's --security-default
    rollout: RolloutSpec | None = None  # absent: the safe guards (sources.policy)


class ImageEntry(BaseModel):
    model_config = _STRICT
    imageId: Text | None = None
    version: Text
    filename: Text | None = None
    path: Text
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    length: Annotated[int, Field(ge=0)]
    created: Annotated[int, Field(ge=0)]
    tags: Tags = {}

    @field_validator("length")
    @classmethod
    def _not_empty(cls, value: int) -> int:
        if value == 0:  # no device can install nothing; almost always a failed build
            raise ValueError(EMPTY_IMAGE)
        return value


class ImagesDoc(BaseModel):
    model_config = _STRICT
    images: list[Any] = []  # entries are checked one by one, so one bad entry hides none


class DeviceEntry(TypedDict):
    """One device; a TypedDict because 100,000 of them are validated in one call."""

    deviceId: NotRequired[Text]
    endpoint: Text
    target: NotRequired[Text | None]
    tags: NotRequired[Tags]
    retry: NotRequired[Annotated[int, Field(ge=0)]]
    security: NotRequired[Security]  # absent: the collection's


class DevicesDoc(BaseModel):
    model_config = _STRICT
    devices: list[Any] = []


DEVICE_LIST: TypeAdapter[list[DeviceEntry]] = TypeAdapter(
    list[DeviceEntry], config=ConfigDict(extra="forbid", strict=True)
)


def derive_id(kind: str, key: str) -> str:
    """A stable reference-style id for an object the manifest gives no id: the same
    manifest always loads to the same ids, so the controller's records stay attached."""
    digest = hashlib.sha256(f"{kind}:{key}".encode()).digest()
    return encode_base24(int.from_bytes(digest[:8], "big"))


def malformed_id(value: str) -> str:
    return f"malformed id {value!r}: use 4 to 16 base-24 digits (0-9, a-n)"


def schema_problems(
    exc: ValidationError, prefix: str, line_of: Callable[[str], int],
    written: Mapping[str, str] | None = None,
) -> list[LocalProblem]:
    """(line, field path, message) per error; `written` maps a field path to the source
    text of a number where it differs from the parsed value (see `YamlDoc.written`)."""
    return error_problems(exc.errors(include_url=False), prefix, line_of, written)


def error_problems(
    errors: Sequence[ErrorDetails], prefix: str, line_of: Callable[[str], int],
    written: Mapping[str, str] | None = None,
) -> list[LocalProblem]:
    """`schema_problems` of pydantic's error records (of several calls, say)."""
    found: list[LocalProblem] = []
    for error in errors:
        path = prefix
        for part in _keys(error["loc"]):
            path = child_path(path, part)
        text = written.get(path) if written else None
        found.append((line_of(path), path, _message(error, text)))
    return found


def _keys(loc: tuple[int | str, ...]) -> list[int | str]:
    """The field path of an error's location, without pydantic's validator steps."""
    return [part for part in loc
            if not (isinstance(part, str) and part.startswith(("function-after", "constrained")))]


def salvaged(check: Callable[[Any], T], value: Any, exc: ValidationError) -> T | None:
    """What `check` accepts of `value` once every field it refused is left out, so the
    rules that need other files (a target against the images, duplicate endpoints) still
    run on the rest and `fota validate` reports everything in one round. None when
    nothing can be kept (the error is the whole value, or a required key)."""
    for _ in range(_SALVAGE_ROUNDS):  # a refused field may hide another one below it
        refused = dict.fromkeys(tuple(_keys(error["loc"])) for error in exc.errors())
        value = _without(value, list(refused))
        if value is None:
            return None
        try:
            return check(value)
        except ValidationError as again:
            exc = again
    return None


def _without(value: Any, locations: list[tuple[int | str, ...]]) -> Any:
    """A copy of `value` without the keys at `locations`; None when one of them is not
    there to drop (a missing required key, or an error about the whole value)."""
    value = copy.deepcopy(value)
    for keys in locations:
        node = value
        for key in keys[:-1]:
            if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                node = node.get(key) if isinstance(node, dict) else None
        if not keys or not isinstance(node, dict) or keys[-1] not in node:
            return None
        del node[keys[-1]]
    return value


def _message(error: Any, written: str | None = None) -> str:
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_type" and isinstance(given, int | float) and not isinstance(given, bool):
        text = written or str(given)
        return f'expected a string, got the number {text}; quote it ("{text}")'
    if kind == "model_type":
        kind = "dict_type"
    if kind in ("string_type", "int_type", "bool_type", "dict_type", "list_type"):
        wanted = kind.split("_")[0].replace("dict", "mapping").replace("int", "integer")
        return f"expected a{'n' if wanted[0] in 'aei' else ''} {wanted}, got {_kind(given)}"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {given!r}"
    if kind == "string_pattern_mismatch":
        return "must be 64 lowercase hex digits"
    if kind == "greater_than_equal":
        return f"must be at least {error['ctx']['ge']}, got {given!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message: str = error["msg"]
    return message[0].lower() + message[1:]


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(type(value), "a list" if isinstance(value, list) else "a mapping")
