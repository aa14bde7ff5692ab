"""`Watches`: the controller's Observe of /5/0/3 and /5/0/5, one set per live registration
(the simulator's `Observers` is the device side of Observe).

The executor starts them (an `Observe` action); the controller asks `observing(reg)` and
`can_observe(reg)` when it builds a Delta. An observation belongs to the registration it
was made on: after a new Register (a reboot, often from a new port) it no longer counts,
and a device that refused Observe is polled until it registers again.

One request observes both: an Observe of the Object 5 instance, /5/0 (LwM2M 1.0 TS
5.5.1 and 8.2.6: an Observe may name an Object Instance; the device notifies when any of
its Resources changes, with the whole instance). That is one request instead of one per
resource, and a state change that also sets the Update Result is one notification, not
two that the report merges one at a time. A device that refuses it (an error code, or an
answer without Observe) gets the resources observed one by one, as before, and is never
asked for the instance again while this server runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from reconciler.errors import DeviceRequestFailed
from reconciler.lwm2m.client import DeviceClient
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.observe import Observation
from reconciler.model.lwm2m import Path, Registration

Notify = Callable[[dict[Path, Value]], None]
# Observe is renewed whenever it is not running (a new Register, our restart, a device
# that cancelled it); a device that keeps dropping it is polled after this many starts
# on one registration, so renewing never becomes a request loop.
MAX_STARTS = 3


def instance_of(paths: Sequence[Path]) -> Path | None:
    """The Object Instance whose Resources `paths` are, when they are two or more
    Resources of one instance; else None (observed as given)."""
    if len(paths) < 2 or any(p.instance is None or p.resource is None for p in paths):
        return None
    instances = {Path(p.object_id, p.instance) for p in paths}
    return instances.pop() if len(instances) == 1 else None


class Watches:
    def __init__(self) -> None:
        self._live: dict[str, tuple[str, list[Observation]]] = {}  # endpoint -> (reg id, obs)
        self._refused: dict[str, str] = {}  # endpoint -> registration id that refused
        self._starts: dict[str, tuple[str, int]] = {}  # endpoint -> (reg id, starts on it)
        # Endpoints that refused an Observe of a whole instance: their resources are
        # observed one by one from then on (bounded by the devices of the desired state).
        self._by_resource: set[str] = set()

    def observing(self, reg: Registration) -> bool:
        entry = self._live.get(reg.endpoint)
        if entry is None or entry[0] != reg.registration_id:
            return False
        return bool(entry[1]) and all(o.active for o in entry[1])

    def can_observe(self, reg: Registration) -> bool:
        starts = self._starts.get(reg.endpoint)
        if starts is not None and starts[0] == reg.registration_id and starts[1] >= MAX_STARTS:
            return False
        return self._refused.get(reg.endpoint) != reg.registration_id

    async def start(self, client: DeviceClient, reg: Registration, paths: Sequence[Path],
                    on_notify: Notify, timeout: float) -> bool:
        """Observe `paths` (their instance in one request when the device allows it);
        True when the instance was answered, observed or not: that answer was a read of
        all of it (`on_notify` had it), so the caller need not read it again."""
        await self.forget(reg.endpoint)
        before = self._starts.get(reg.endpoint)
        count = before[1] if before is not None and before[0] == reg.registration_id else 0
        self._starts[reg.endpoint] = (reg.registration_id, count + 1)
        started: list[Observation] = []
        self._live[reg.endpoint] = (reg.registration_id, started)
        instance = instance_of(paths)
        if instance is not None and reg.endpoint not in self._by_resource:
            whole = await self._observe(client, instance, on_notify, timeout)
            if whole is not None and whole.active:
                started.append(whole)
                return True
            self._by_resource.add(reg.endpoint)
            read = whole is not None  # answered without Observe: a plain read of /5/0
        else:
            read = False
        for path in paths:
            observation = await self._observe(client, path, on_notify, timeout)
            if observation is None or not observation.active:
                self._refused[reg.endpoint] = reg.registration_id
                break
            started.append(observation)
        return read

    @staticmethod
    async def _observe(client: DeviceClient, path: Path, on_notify: Notify,
                       timeout: float) -> Observation | None:
        """The observation of `path` (inactive, and cancelled, when the device answered
        without Observe: RFC 7641 3.2, not observable there), or None when the device
        refused it with an error code."""
        try:
            observation = await client.observe(path, on_notify, timeout=timeout)
        except DeviceRequestFailed:
            return None
        if not observation.active:
            await observation.cancel()
        return observation

    async def forget(self, endpoint: str) -> None:
        entry = self._live.pop(endpoint, None)
        if entry is not None:
            await asyncio.gather(*(o.cancel() for o in entry[1]), return_exceptions=True)

    async def drop_stale(self, endpoint: str, current: Registration | None) -> None:
        """Cancel the endpoint's observations unless they belong to `current`."""
        entry = self._live.get(endpoint)
        if entry is not None and (current is None or entry[0] != current.registration_id):
            await self.forget(endpoint)

    async def close(self) -> None:
        for endpoint in list(self._live):
            await self.forget(endpoint)
