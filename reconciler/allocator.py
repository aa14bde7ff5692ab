"""Which allocator `fota serve` runs on: glibc's malloc for Python's small objects too,
unless the operator chose otherwise. Called by `reconciler.cli.main` (the console
script) before anything else, and by `fota serve` for its ready line.

Why (issue 8 item 6, bench/README.md's big_commit section): with CPython's own small-object
allocator (pymalloc) a server's RSS after a 200,000-device commit and its revert stays
~59 MB above where it started. pymalloc hands a 1 MiB arena back only once every object
in it is gone, and the few objects made during the apply that outlive it (SQLite
statements, the file watcher's last batch, asyncio callbacks) pin most of them; CPython
cannot move them. With `PYTHONMALLOC=malloc`, glibc serves the small objects as well and
`malloc_trim` gives memory back a page at a time: 9.6 MB above the start (session mem8),
for about the same apply time and event-loop pauses and a peak ~22 MB higher.

`PYTHONMALLOC` is read once, before the interpreter runs any Python code, so the only way
to choose it from inside is to execute the same command line again with it set:
`os.execv` keeps the process id (supervisors, pid files and signals see one process),
the open descriptors not marked close-on-exec (inherited sockets, the terminal) and the
working directory. An operator who sets `PYTHONMALLOC` (`pymalloc`, a debug variant)
keeps that choice: nothing is executed again.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "PYTHONMALLOC"
DEFAULT = "malloc"  # glibc's malloc for every allocation (see the module docstring)


def exec_with_default() -> None:
    """Execute this process's command line again with `PYTHONMALLOC=malloc` when the
    environment does not set `PYTHONMALLOC`; returns only when it is set already (or the
    exec failed, which leaves pymalloc running and says so on stderr).

    Call it first thing in a real command's entry point, before any thread starts or any
    file that matters is opened: the new image starts from scratch. It cannot loop: the
    variable is in the environment the new image starts with, so there it returns."""
    if VARIABLE in os.environ or not sys.executable:
        return
    os.environ[VARIABLE] = DEFAULT
    # sys.orig_argv is the interpreter's own command line: `fota serve ...` run through
    # the script's shebang, `python -m reconciler.cli serve ...`, `python -P -X ... -m ...`
    # alike. Its first entry may be a bare name found on PATH; sys.executable is the
    # absolute path the interpreter resolved it to (a virtualenv's python included).
    argv = [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as exc:  # e.g. the interpreter's file was replaced by an upgrade
        del os.environ[VARIABLE]  # so the start-up line says what really runs
        print(f"fota: running with pymalloc: could not execute {sys.executable} again "
              f"with {VARIABLE}={DEFAULT}: {exc}", file=sys.stderr)


def describe() -> str:
    """The allocator this interpreter runs on, for the ready line: `malloc` or
    `pymalloc`, and what `PYTHONMALLOC` says."""
    chosen = os.environ.get(VARIABLE)
    # pymalloc counts its blocks; with glibc's malloc underneath there are none to count.
    # That also tells a -E/-I interpreter (which ignores the variable) from a real one.
    running = "pymalloc" if sys.getallocatedblocks() > 0 else "malloc"
    if chosen is None:
        return f"{running} ({VARIABLE} not set)"
    return f"{running} ({VARIABLE}={chosen})"
