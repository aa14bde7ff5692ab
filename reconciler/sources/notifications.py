"""`manifests/notifications.yaml` -> `Notifications`: providers and alerts, like Flux's.

    providers:                      # where notifications go
    - name: ops
      type: webhook                 # webhook | slack | github | gitlab
      address: https://hooks.example.com/fota
      secretFrom: {env: FOTA_OPS_HMAC_KEY}
    alerts:                         # which events go to which provider
    - name: failures
      provider: ops
      collections: [trackers]
      severity: error

Secrets (HMAC keys, API tokens, Slack webhook URLs) are never written here: only the
names of the environment variables `fota serve` reads them from, so no problem this
module reports can quote one. `split_notifications` takes the file out of the snapshot's
list before `layout.group_files` sorts the collections; `notifications_from` parses and
checks it against the collections. Both are called by `reconciler.sources.assemble`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.model.notify import (
    NO_NOTIFICATIONS,
    Alert,
    Notifications,
    Provider,
    ProviderKind,
    Severity,
)
from reconciler.sources.parsing import MAX_MANIFEST_BYTES, ParsedDoc, decode_utf8
from reconciler.sources.problems import LocalProblem, Problem, by_line, located
from reconciler.sources.schema import schema_problems
from reconciler.sources.snapshot import MANIFESTS, FileEntry
from reconciler.sources.yamlload import read_yaml

NOTIFICATIONS_FILES = tuple(f"{MANIFESTS}/notifications{ext}" for ext in (".yaml", ".yml"))
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9._-]{0,62})$")]
Text = Annotated[str, Field(min_length=1)]
_NAME_RULE = "lowercase letters, digits, '.', '_' and '-', at most 63"
_SECRET_URL = ("a Slack webhook URL carries its secret: keep it in an environment variable "
               "and write addressFrom: {env: NAME}")
_DEFAULT_BASE = {ProviderKind.GITHUB: "https://api.github.com",
                 ProviderKind.GITLAB: "https://gitlab.com/api/v4"}


class EnvRef(BaseModel):
    model_config = _STRICT
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class ProviderDoc(BaseModel):
    model_config = _STRICT
    name: Name
    type: Literal["webhook", "slack", "github", "gitlab"]
    address: Text | None = None
    addressFrom: EnvRef | None = None
    secretFrom: EnvRef | None = None  # webhook: the HMAC-SHA256 key
    tokenFrom: EnvRef | None = None  # github, gitlab: the API token
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None  # github
    project: Text | None = None  # gitlab: numeric id or "group/project"
    format: Literal["json", "cloudevents"] = "json"  # webhook only


class AlertDoc(BaseModel):
    model_config = _STRICT
    name: Name
    provider: Name
    collections: list[Text] = []
    severity: Literal["info", "warning", "error"] | None = None
    kinds: list[Literal["state", "target", "error", "rollout"]] = []  # the event kind


class NotificationsDoc(BaseModel):
    model_config = _STRICT
    providers: list[Any] = []  # entries are checked one by one, so one bad hides none
    alerts: list[Any] = []


def split_notifications(entries: list[FileEntry]) -> tuple[FileEntry | None, list[FileEntry]]:
    """The notifications file (if any) and every other manifest file."""
    found = [e for e in entries if e.path in NOTIFICATIONS_FILES]
    rest = [e for e in entries if e.path not in NOTIFICATIONS_FILES]
    return (found[0] if found else None), rest


def notifications_from(
    entry: FileEntry, read: Callable[[], bytes], collections: Mapping[str, str]
) -> tuple[Notifications, list[Problem]]:
    """Parse and check the file; `collections` maps a collection's directory name and its
    id to its id (alerts may name either). Problems come back with file and line."""
    if entry.symlink:
        return NO_NOTIFICATIONS, [Problem(entry.path, 1, "", "manifest files must not be "
                                          "symlinks")]
    if entry.size > MAX_MANIFEST_BYTES:
        return NO_NOTIFICATIONS, [Problem(entry.path, 1, "", f"file is {entry.size} bytes, "
                                          f"over the {MAX_MANIFEST_BYTES}-byte limit")]
    text = decode_utf8(read())
    if isinstance(text, tuple):
        return NO_NOTIFICATIONS, located(entry.path, [text])
    notifications, found = parse_notifications(text, collections)
    found.sort(key=by_line)
    return notifications, located(entry.path, found)


def parse_notifications(
    text: str, collections: Mapping[str, str]
) -> tuple[Notifications, list[LocalProblem]]:
    yaml_doc = read_yaml(text)
    doc = ParsedDoc(yaml_doc.value, yaml_doc.lines, list(yaml_doc.problems), yaml_doc.written)
    if doc.value is None:
        return NO_NOTIFICATIONS, doc.problems
    if not isinstance(doc.value, dict):
        return NO_NOTIFICATIONS, [*doc.problems, (1, "", "expected a mapping at the top level")]
    _check(NotificationsDoc.model_validate, doc.value, "", doc)
    providers = _entries(doc, "providers", ProviderDoc)
    alerts = _entries(doc, "alerts", AlertDoc)
    built = [p for p in (_provider(doc, i, p) for i, p in providers) if p is not None]
    _unique(doc, "providers")
    _unique(doc, "alerts")
    kinds = {p.name: ProviderKind(p.type) for _, p in providers}
    routed = [_alert(doc, i, a, kinds, collections) for i, a in alerts]
    return Notifications(tuple(built), tuple(a for a in routed if a is not None)), doc.problems


def _check(check: Callable[[Any], Any], value: Any, prefix: str, doc: ParsedDoc) -> Any:
    try:
        return check(value)
    except ValidationError as exc:
        doc.problems.extend(schema_problems(exc, prefix, doc.line_of, doc.written))
        return None


def _entries(doc: ParsedDoc, key: str, model: type[BaseModel]) -> list[tuple[int, Any]]:
    listed = doc.value.get(key)
    found: list[tuple[int, Any]] = []
    for index, raw in enumerate(listed if isinstance(listed, list) else []):
        checked = _check(model.model_validate, raw, f"{key}[{index}]", doc)
        if checked is not None:
            found.append((index, checked))
    return found


def _unique(doc: ParsedDoc, key: str) -> None:
    """Names are checked on every entry, valid or not: two entries meant as one."""
    listed = doc.value.get(key)
    seen: set[str] = set()
    for index, raw in enumerate(listed if isinstance(listed, list) else []):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            path = f"{key}[{index}].name"
            doc.problems.append((doc.line_of(path), path, f"duplicate name {name!r}"))
        seen.add(name)


def _provider(doc: ParsedDoc, index: int, spec: ProviderDoc) -> Provider | None:
    """The provider, or None with its problems recorded: which keys each type takes."""
    kind = ProviderKind(spec.type)
    at = f"providers[{index}]"
    before = len(doc.problems)

    def refuse(key: str, message: str) -> None:
        doc.problems.append((doc.line_of(f"{at}.{key}"), f"{at}.{key}", message))

    allowed = _ALLOWED[kind]
    for key in ("address", "addressFrom", "secretFrom", "tokenFrom", "repository", "project"):
        if getattr(spec, key) is not None and key not in allowed:
            refuse(key, _NOT_FOR.get((kind, key), f"not used by a {kind.value} provider"))
    if spec.format != "json" and kind is not ProviderKind.WEBHOOK:
        refuse("format", f"not used by a {kind.value} provider")
    _required(kind, spec, refuse)
    if spec.address is not None and "address" in allowed:
        problem = _url_problem(spec.address)
        if problem is not None:
            refuse("address", problem)
    if len(doc.problems) > before:
        return None
    secret = spec.tokenFrom or spec.secretFrom
    return Provider(
        name=spec.name, kind=kind,
        address=spec.address or _DEFAULT_BASE.get(kind),
        address_env=spec.addressFrom.env if spec.addressFrom else None,
        secret_env=secret.env if secret else None,
        repository=spec.repository or spec.project, cloudevents=spec.format == "cloudevents")


_ALLOWED = {
    ProviderKind.WEBHOOK: {"address", "addressFrom", "secretFrom"},
    ProviderKind.SLACK: {"addressFrom"},
    ProviderKind.GITHUB: {"address", "tokenFrom", "repository"},
    ProviderKind.GITLAB: {"address", "tokenFrom", "project"},
}
_NOT_FOR = {
    (ProviderKind.SLACK, "address"): _SECRET_URL,
    (ProviderKind.WEBHOOK, "tokenFrom"): "a webhook is signed with secretFrom (an HMAC key)",
    (ProviderKind.GITHUB, "secretFrom"): "a GitHub token is given with tokenFrom",
    (ProviderKind.GITLAB, "secretFrom"): "a GitLab token is given with tokenFrom",
    (ProviderKind.GITHUB, "project"): "GitHub names the repository with repository: owner/repo",
    (ProviderKind.GITLAB, "repository"): "GitLab names the project with project: ID or path",
}


def _required(kind: ProviderKind, spec: ProviderDoc, refuse: Callable[[str, str], None]) -> None:
    if kind is ProviderKind.WEBHOOK and (spec.address is None) == (spec.addressFrom is None):
        refuse("address", "give exactly one of address and addressFrom: {env: NAME}")
    if kind is ProviderKind.SLACK and spec.addressFrom is None and spec.address is None:
        refuse("addressFrom", "required: the environment variable holding the webhook URL")
    if kind.commit_status and spec.tokenFrom is None:
        refuse("tokenFrom", "required: the environment variable holding the API token")
    if kind is ProviderKind.GITHUB and spec.repository is None:
        refuse("repository", "required: the repository as owner/repo")
    if kind is ProviderKind.GITLAB and spec.project is None:
        refuse("project", "required: the project's numeric id or its path (group/project)")


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be used; never quotes it (it may carry a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return ("credentials in a URL committed to git: put the URL in an environment "
                "variable and write addressFrom: {env: NAME}")
    return None


def _alert(doc: ParsedDoc, index: int, spec: AlertDoc, kinds: Mapping[str, ProviderKind],
           collections: Mapping[str, str]) -> Alert | None:
    at = f"alerts[{index}]"
    before = len(doc.problems)
    kind = kinds.get(spec.provider)
    if kind is None:
        doc.problems.append((doc.line_of(f"{at}.provider"), f"{at}.provider",
                             f"no provider named {spec.provider!r} in providers"))
    elif kind.commit_status and (spec.severity is not None or spec.kinds):
        key = "severity" if spec.severity is not None else "kinds"
        doc.problems.append((doc.line_of(f"{at}.{key}"), f"{at}.{key}",
                             f"a {kind.value} provider posts each rollout's outcome as a "
                             "commit status, not events: select collections only"))
    ids: list[str] = []
    for i, name in enumerate(spec.collections):
        found = collections.get(name)
        if found is None:
            path = f"{at}.collections[{i}]"
            doc.problems.append((doc.line_of(path), path, f"no collection {name!r} (write "
                                 "its directory name under manifests/ or its collectionId)"))
        else:
            ids.append(found)
    if len(doc.problems) > before:
        return None
    severity = Severity[(spec.severity or "info").upper()]
    return Alert(spec.name, spec.provider, frozenset(ids), severity, frozenset(spec.kinds))

