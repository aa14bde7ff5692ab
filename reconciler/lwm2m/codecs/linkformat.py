"""CoRE Link Format (RFC 6690, content format 40) for Register, Update and Discover payloads.

`parse_link_format("</1/0>,</3/0>;ver=1.1,</>;rt=\"oma.lwm2m\";ct=11543")` gives `Link`
values with their attributes unquoted and in order; `format_link_format` writes them back.
Quoted strings may hold ',' and ';'; whitespace around separators is tolerated because
real clients send it. Used by the registration interface (server) and the simulator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model.lwm2m import Path

from .values import CodecError

_PTOKEN = re.compile(r"[!#$%&'()*+\-.:<=>?@\[\]^_`{|}~A-Za-z0-9/]+")
_PARMNAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~*]+")
_ALWAYS_QUOTED = frozenset({"rt", "if", "title", "anchor", "rel", "rev", "type"})


@dataclass(frozen=True, slots=True)
class Link:
    """One link-value: the target URI reference and its parameters (None: no value)."""

    target: str
    params: tuple[tuple[str, str | None], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.params)

    @property
    def attributes(self) -> dict[str, str | None]:
        return dict(self.params)

    @property
    def path(self) -> Path | None:
        """The target as an LwM2M path, or None (the root "/" or a non-numeric target)."""
        try:
            return Path.parse(self.target)
        except ValueError:
            return None


def parse_link_format(text: str) -> list[Link]:
    """Every link-value of a link-format document; CodecError names the bad position."""
    parser = _Parser(text)
    links: list[Link] = []
    parser.skip_space()
    while not parser.done():
        links.append(parser.link())
        parser.skip_space()
        if not parser.done():
            parser.expect(",")
            parser.skip_space()
    return links


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def skip_space(self) -> None:
        while not self.done() and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def fail(self, what: str) -> CodecError:
        return CodecError(f"link format: {what} at character {self.pos}: {self.text[:80]!r}")

    def expect(self, char: str) -> None:
        if self.done() or self.text[self.pos] != char:
            found = "the end" if self.done() else repr(self.text[self.pos])
            raise self.fail(f"expected {char!r}, found {found}")
        self.pos += 1

    def link(self) -> Link:
        self.expect("<")
        end = self.text.find(">", self.pos)
        if end < 0:
            raise self.fail("unterminated '<'")
        target = self.text[self.pos : end]
        if any(c in target for c in '<" \t\r\n'):
            raise self.fail(f"bad target {target!r}")
        self.pos = end + 1
        params: list[tuple[str, str | None]] = []
        self.skip_space()
        while not self.done() and self.text[self.pos] == ";":
            self.pos += 1
            self.skip_space()
            params.append(self.param())
            self.skip_space()
        return Link(target, tuple(params))

    def param(self) -> tuple[str, str | None]:
        match = _PARMNAME.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a parameter name")
        self.pos = match.end()
        if self.done() or self.text[self.pos] != "=":
            return match.group(), None
        self.pos += 1
        if not self.done() and self.text[self.pos] == '"':
            return match.group(), self.quoted()
        value = _PTOKEN.match(self.text, self.pos)
        if value is None:
            raise self.fail(f"parameter {match.group()!r} has no value after '='")
        self.pos = value.end()
        return match.group(), value.group()

    def quoted(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while not self.done() and self.text[self.pos] != '"':
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        self.expect('"')
        return "".join(chars)


def format_link_format(links: Iterable[Link]) -> str:
    return ",".join(_format_link(link) for link in links)


def _format_link(link: Link) -> str:
    parts = [f"<{link.target}>"]
    for name, value in link.params:
        if value is None:
            parts.append(name)
        elif name in _ALWAYS_QUOTED or not _PTOKEN.fullmatch(value):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{name}="{escaped}"')
        else:
            parts.append(f"{name}={value}")
    return ";".join(parts)
