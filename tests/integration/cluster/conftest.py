"""Makes the forwarder fixture and the controller's harness importable (tests run in
importlib mode, without packages)."""

import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parent / "controller"))
