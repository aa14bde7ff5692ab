"""`Metrics`: the counters and histograms of one process, in its own registry.

Built once by `serve.service` (and by tests), which hands the recording methods to the
layers where each event happens: the LwM2M server's request and block hooks, the store's
write hook, the controller's reconcile hook, the admission check, the loop-lag watcher.
Figures of the fleet (devices per state, rollouts, the source) are not kept here: the
API's collector reads them from the store's tallies at scrape time. The CoAPs listener's
counters are read from the server at scrape time too (`DtlsCollector`).
Names follow Prometheus conventions: `fota_` prefix, `_total` counters, base units.
Labels take values from small fixed sets, never a device, endpoint or token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: SQLite commits (sub-ms to a slow disk's tens of ms), reconcile steps (a
# decision alone, or a device round trip of seconds), event-loop lag (ms to a stall).
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RECONCILE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lwm2m_requests = Counter(
            "fota_lwm2m_requests", "Requests sent to devices, by operation and outcome",
            ["operation", "outcome"], registry=r)
        self.registrations = Counter(
            "fota_lwm2m_registrations", "Registrations accepted (Register, not Update)",
            registry=r)
        self.registrations_refused = Counter(
            "fota_lwm2m_registrations_refused",
            "Registrations refused: the endpoint is declared in no collection", registry=r)
        self.registrations_current = Gauge(
            "fota_lwm2m_registrations_current", "Devices registered now", registry=r)
        self.store_writes = Histogram(
            "fota_store_write_seconds", "State file write transactions, lock wait included",
            buckets=WRITE_BUCKETS, registry=r)
        self.reconciles = Histogram(
            "fota_reconcile_duration_seconds", "One reconcile of one device",
            buckets=RECONCILE_BUCKETS, registry=r)
        self.loop_lag = Histogram(
            "fota_event_loop_lag_seconds", "How late the event loop ran a timer",
            buckets=LAG_BUCKETS, registry=r)

    # The hooks, one per event; each is handed to the layer where the event happens.
    def lwm2m_request(self, operation: str, outcome: str) -> None:
        self.lwm2m_requests.labels(operation, outcome).inc()

    def registered(self) -> None:
        self.registrations.inc()

    def refused(self) -> None:
        self.registrations_refused.inc()

    def store_write(self, seconds: float) -> None:
        self.store_writes.observe(seconds)

    def reconciled(self, seconds: float) -> None:
        self.reconciles.observe(seconds)

    def lagged(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)

    def count_registrations(self, current: Callable[[], int]) -> None:
        """Read the registrations gauge from `current()` at each scrape."""
        self.registrations_current.set_function(lambda: float(current()))

    def count_dtls(self, status: Callable[[], Mapping[str, int] | None]) -> None:
        """Read the CoAPs listener's counters from `status()` (what /status shows as
        `dtls`; None without a listener) at each scrape: no work per datagram."""
        self.registry.register(DtlsCollector(status))

    def count_firmware(self, sent: Callable[[], tuple[int, int]]) -> None:
        """Read the firmware blocks and payload bytes served from `sent()` at each
        scrape: the block path only adds to two ints (a prometheus Counter's locked
        `inc` per block cost more than answering the block)."""
        self.registry.register(FirmwareCollector(sent))


# The CoAPs listener's figures: (status key, gauge name, help) and, per counter family,
# its help, its label and which status key gives which label value. Label values are
# these fixed words, never an identity, endpoint or address.
_DTLS_GAUGES = (
    ("sessions", "fota_dtls_sessions", "DTLS sessions established now"),
    ("handshaking", "fota_dtls_handshakes_in_progress",
     "DTLS handshakes past the cookie check and not finished yet"),
)
_DTLS_COUNTERS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("fota_dtls_handshakes", "DTLS handshakes by outcome: completed; failed (a fatal "
     "alert, an unknown identity, the handshake timeout); dropped (a ClientHello while "
     "the cap of handshakes in progress was reached)", "outcome",
     {"handshakes": "completed", "handshake_failures": "failed",
      "handshakes_refused": "dropped"}),
    ("fota_dtls_sessions_ended", "DTLS sessions ended, by reason: expired (idle), closed "
     "(by the peer), evicted (over the sessions per identity), revoked (credential "
     "removed or changed), replaced (a new handshake from the same address)", "reason",
     {"expired": "expired", "closed": "closed", "evicted": "evicted", "revoked": "revoked",
      "replaced": "replaced"}),
    ("fota_dtls_refusals", "Refused for security, by reason: unknown_identity (at the "
     "handshake), identity_mismatch (Register as another endpoint than the identity's), "
     "plain_coap (an endpoint that requires PSK), security_context (Update from another "
     "session kind than the registration's), plain_firmware (a secured device's "
     "firmware asked over plain CoAP)", "reason",
     {"unknown_identities": "unknown_identity",
      "refused_identity_mismatch": "identity_mismatch", "refused_plain_coap": "plain_coap",
      "refused_security_context": "security_context",
      "refused_plain_firmware": "plain_firmware"}),
)
_DTLS_PLAIN_COUNTERS = (
    ("cookies_sent", "fota_dtls_cookies_sent",
     "HelloVerifyRequests sent (stateless: a flood of ClientHellos costs no memory)"),
    ("rebindings", "fota_dtls_rebindings", "Updates that came in another DTLS session "
     "than the registration's (NAT rebinding: a new handshake from a new address)"),
)


class DtlsCollector(Collector):
    """The CoAPs listener's counters as Prometheus families, read at scrape time."""

    def __init__(self, status: Callable[[], Mapping[str, int] | None]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status = self._status()
        if status is None:
            return  # no CoAPs listener: no series at all
        for key, name, text in _DTLS_GAUGES:
            yield GaugeMetricFamily(name, text, value=status.get(key, 0))
        for name, text, label, values in _DTLS_COUNTERS:
            family = CounterMetricFamily(name, text, labels=[label])
            for key, value in values.items():
                family.add_metric([value], status.get(key, 0))
            yield family
        for key, name, text in _DTLS_PLAIN_COUNTERS:
            yield CounterMetricFamily(name, text, value=status.get(key, 0))


class FirmwareCollector(Collector):
    """Firmware blocks and payload bytes served, as counters read at scrape time."""

    def __init__(self, sent: Callable[[], tuple[int, int]]) -> None:
        self._sent = sent

    def collect(self) -> Iterator[CounterMetricFamily]:
        blocks, payload_bytes = self._sent()
        yield CounterMetricFamily("fota_firmware_blocks_served",
                                  "Firmware blocks sent to devices", value=blocks)
        yield CounterMetricFamily("fota_firmware_served_bytes",
                                  "Firmware payload bytes sent to devices",
                                  value=payload_bytes)
