"""What a restart needs, written as it happens and read back on start.

A `fota serve` that is killed and started again must not forget its fleet: devices whose
registration has not expired are live again at once (not at their next Update, hours
away for a 24 h lifetime), and package URIs handed out keep serving, so a download
resumes at the block the device asks for instead of failing with 4.04 and costing the
device a retry. `RestartRecords` keeps the store's offers in step with the server's (the
server tells it before a URI can reach a device; offers that expired and the read format
a device accepted are noted and written in one batch off the loop by `flush`, which the
controller calls every second) and, on start, puts back what is still valid:
`restore_offers` before the CoAP socket listens, `restore_registrations` once it does (the
remotes live on that socket; the server, started `restoring`, holds Register, Update and
Send until then, so an Update read right after the bind finds its device). Built by the
controller; the service calls both, through `Controller.restore_offers` and
`Controller.restore`, before the work queue runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import FirmwareOffer
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import Store

log = logging.getLogger("reconciler.restore")

# An offer is worth serving again only while its download may still be running.
DOWNLOADING = frozenset({UpdateState.INITIALIZING, UpdateState.DOWNLOADING,
                         UpdateState.DOWNLOADED})


@dataclass(frozen=True, slots=True)
class Restored:
    started_at: float
    registrations: int
    offers: int
    endpoints: tuple[str, ...]  # the restored registrations' endpoints


def offer_still_wanted(offer: FirmwareOffer, desired: DesiredState,
                       progress: DeviceProgress | None) -> bool:
    """Pure: an offer is served again only for a device still downloading that image as
    its target. An offer whose update ended, failed or was retargeted stays dead (4.04)."""
    device = desired.device_by_endpoint(offer.endpoint)
    if device is None or offer.image_id not in desired.images or progress is None:
        return False
    return (progress.target_image_id == offer.image_id
            and desired.effective_target(device) == offer.image_id
            and progress.state in DOWNLOADING)


class RestartRecords:
    def __init__(self, store: Store, server: Lwm2mServer) -> None:
        self._store, self._server = store, server
        self._offers = 0  # restored by restore_offers, reported with the registrations
        # Noted, not yet written (see `flush`): endpoint -> (registration id, read format),
        # and the latest instant by which offers expired in the server.
        self._formats: dict[str, tuple[str, int | None]] = {}
        self._expired_by: float | None = None

    def on_offer(self, endpoint: str, offer: FirmwareOffer | None) -> None:
        """The server handed out (or revoked) a package URI: record it first."""
        if offer is None:
            self._store.delete_offer(endpoint)
        else:
            self._store.put_offer(offer)

    def on_format(self, endpoint: str, registration_id: str, fmt: int | None) -> None:
        """The device's reads accepted `fmt`: worth keeping across a restart, not worth a
        transaction per device (at most one pending per endpoint)."""
        self._formats[endpoint] = (registration_id, fmt)

    def on_offers_expired(self, now: float) -> None:
        """The server dropped every offer with `expires_at <= now`."""
        self._expired_by = now if self._expired_by is None else max(self._expired_by, now)

    async def flush(self) -> None:
        """Write what was noted since the last flush, in a worker thread: a batch of
        expired offers can be a whole rollout's. Neither is needed before a datagram goes
        out (a restart finds a dead offer dead anyway, and a format at worst costs a
        4.06), so a failure is logged, not raised."""
        formats, self._formats = self._formats, {}
        expired, self._expired_by = self._expired_by, None
        if not formats and expired is None:
            return
        try:
            await asyncio.to_thread(self._write, formats, expired)
        except Exception:
            log.exception("could not write %d read formats and expired offers to the "
                          "state file", len(formats))

    def _write(self, formats: dict[str, tuple[str, int | None]],
               expired: float | None) -> None:
        if formats:
            self._store.put_read_formats([(ep, rid, fmt) for ep, (rid, fmt) in formats.items()])
        if expired is not None:
            self._store.forget_expired_offers(expired)

    async def restore_offers(self, desired: DesiredState,
                             images: Callable[[str], Awaitable[bytes]], now: float) -> int:
        """Serve the offers of downloads still running again, under their old tokens.
        Call before the CoAP server listens: a device whose block request arrives first
        must never see 4.04 (it would end its download and start over)."""
        self._store.forget_expired(now)
        offers = 0
        # A rollout's offers share a few images: each is read once here, not once per
        # offer (a worker-thread hop each, ~0.1 s per 400 offers of a restart's time to
        # its first answer).
        read: dict[str, bytes | None] = {}
        for offer in self._store.live_offers(now):
            device = desired.device_by_endpoint(offer.endpoint)
            progress = self._store.progress(device.device_id) if device else None
            if offer_still_wanted(offer, desired, progress):
                if offer.image_id not in read:
                    read[offer.image_id] = await self._image(offer, images)
                data = read[offer.image_id]
                if data is not None:
                    self._server.restore_offer(offer, data)
                    offers += 1
                    continue
            self._store.delete_offer(offer.endpoint)
        self._offers = offers
        return offers

    def restore_registrations(self, desired: DesiredState, now: float,
                              owned: Callable[[str], bool] = lambda _endpoint: True
                              ) -> Restored:
        """Make the live registrations of declared devices live again (the server must
        be started) and record (and log) what this start restored, for /status. Only
        those `owned` by this node: on a shared store, another node's stay its own."""
        records = [(reg, formats) for reg, formats in self._store.live_registrations(now)
                   if desired.device_by_endpoint(reg.endpoint) is not None
                   and owned(reg.endpoint)]
        restored = self._server.restore(records)
        endpoints = tuple(reg.endpoint for reg, _ in records
                          if self._server.registration(reg.endpoint) is not None)
        result = Restored(now, restored, self._offers, endpoints)
        self._store.set_restart_status({"started_at": now, "registrations": restored,
                                        "offers": self._offers})
        log.info("restored %d registrations and %d firmware offers from the state file",
                 restored, self._offers)
        return result

    async def _image(self, offer: FirmwareOffer,
                     images: Callable[[str], Awaitable[bytes]]) -> bytes | None:
        try:
            return await images(offer.image_id)
        except FileNotFoundError as exc:
            # The image cannot be read at the applied revision: its URIs answer 4.04 and
            # the engine treats that Invalid URI as our restart's doing (a retry).
            log.warning("offers of %s not restored (first: %s): %s", offer.image_id,
                        offer.endpoint, exc)
            return None
