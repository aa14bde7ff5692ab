"""`instrument(...)`: hands one `observe.Metrics` its hooks in every layer of `fota serve`.

Each layer exposes a plain callable slot where its event happens (the LwM2M server's
requests and firmware blocks, the store's writes, the controller's reconciles); this
wires them, counts registrations from the server's events and refusals at admission,
and reads the live registrations at scrape time. Called once by `service.run_service`.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.controller.core import Controller
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import RegistrationEvent, RegistrationEventKind
from reconciler.observe.metrics import Metrics
from reconciler.store import SqliteStore


def instrument(metrics: Metrics, store: SqliteStore, server: Lwm2mServer,
               controller: Controller) -> Callable[[], None]:
    """Wire the hooks; returns the unsubscribe of the registration counter."""
    store.on_write = metrics.store_write
    server.count_request = metrics.lwm2m_request
    firmware = server.firmware
    metrics.count_firmware(lambda: (firmware.blocks_sent, firmware.bytes_sent))
    controller.on_reconcile = metrics.reconciled
    metrics.count_registrations(lambda: len(server.registrations()))
    metrics.count_dtls(server.dtls_status)

    def registered(event: RegistrationEvent) -> None:
        if event.kind is RegistrationEventKind.REGISTERED:
            metrics.registered()

    return server.subscribe(registered)


def counting_refusals(admit: Callable[[str], bool], refused: Callable[[], None]
                      ) -> Callable[[str], bool]:
    """The admission check, counting each refusal."""
    def check(endpoint: str) -> bool:
        allowed = admit(endpoint)
        if not allowed:
            refused()
        return allowed
    return check
