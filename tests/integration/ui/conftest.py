"""Makes this directory's helpers (`fleet`, `browser`) and the controller tests' harness
(a served desired-state repo and simulator fleet) importable: tests run in importlib
mode, without packages."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "controller"))
