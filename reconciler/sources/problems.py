"""Validation problems: one located complaint about the desired state.

Every manifest check in `reconciler.sources` produces `Problem` values; `fota validate`
prints them as text or GitHub annotations, `GitSource` keeps their text in its status and
`load_tree` raises them inside a `ManifestError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A problem found inside one file before the file's path is known (cached per blob).
LocalProblem = tuple[int, str, str]  # (line, field path, message)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """`str(p)` is `file:line: field: message` (the field part is left out when empty)."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if not self.field:
            return f"{where}: {self.message}"
        return f"{where}: {self.field}: {self.message}"

    def github(self, level: str = "error") -> str:
        """A GitHub Actions workflow command that annotates the line in a pull request
        (`level` "warning" for what does not fail the check)."""
        file = _escape_property(self.file)
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"::{level} file={file},line={self.line}::{_escape_data(text)}"


def located(file: str, found: Iterable[LocalProblem]) -> list[Problem]:
    """Attach a file path to problems found inside that file."""
    return [Problem(file, line, field, message) for line, field, message in found]


def by_line(problem: LocalProblem) -> int:
    """Sort key for one file's problems; a stable sort keeps a line's fields in the
    schema's order."""
    return problem[0]


def _escape_data(text: str) -> str:
    # The escaping GitHub's toolkit applies to a command's message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
