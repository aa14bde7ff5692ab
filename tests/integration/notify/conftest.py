"""Makes the receivers and the harness importable (importlib mode, no packages; the
controller's harness too, for the end-to-end test) and gives each test a real state
file (`notify_harness.State`), closed afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "controller"))

from notify_harness import State

from reconciler.store import open_reader, open_store


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    store = open_store(tmp_path / "state.db")
    reader = open_reader(tmp_path / "state.db")
    try:
        yield State(tmp_path / "state.db", store, reader)
    finally:
        reader.close()
        store.close()
