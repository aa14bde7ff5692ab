"""A real SQLite store with a fleet the dashboard can page through, and helpers to read
its pages. Makes this directory's helpers importable (tests run in importlib mode)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
