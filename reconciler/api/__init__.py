"""The read-only HTTP API: reference FOTA GET shapes, status, probes, over a StoreReader.

`create_app` builds the FastAPI app; `check_bind` (from `reconciler.loopback`) is what
`fota serve` calls before listening so that an API without a token never leaves loopback.
"""

from reconciler.api.app import create_app
from reconciler.loopback import check_bind  # light: `fota serve` imports it from there

__all__ = ["check_bind", "create_app"]
