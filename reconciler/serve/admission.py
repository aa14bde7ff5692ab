"""`Admission`: which endpoints may register with `fota serve`'s LwM2M server.

Only endpoints declared in the applied desired state may register (others get 4.03). The
decision reads the git source's current state, which exists before the LwM2M server and
the controller are built, so the server takes this hook at construction and neither it
nor the controller needs to find the other. Built by `service.run_service`.
"""

from __future__ import annotations

from reconciler.sources import GitSource


class Admission:
    def __init__(self, source: GitSource) -> None:
        self._source = source

    def __call__(self, endpoint: str) -> bool:
        current = self._source.current
        return current is not None and current.device_by_endpoint(endpoint) is not None
