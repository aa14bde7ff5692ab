"""What one simulated device is (`DeviceSpec`) and how fast simulated time runs (`Timing`).

Plain frozen values: `Fleet` and `cmd` build them, `device` and `updater` read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.lwm2m import DeliveryMethod
from reconciler.simulator.coap import Reliability
from reconciler.simulator.faults import Fault


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    endpoint: str
    version: str = "1.0.0"  # firmware version reported in /3/0/3 at start
    lwm2m_version: str = "1.1"
    lifetime: int = 300
    queue_mode: bool = False
    delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY
    block_size: int = 512
    faults: frozenset[Fault] = frozenset()
    model: str = "sim-1"
    manufacturer: str = "fota-gitops"
    psk: tuple[bytes, bytes] | None = None  # (identity, key): talks DTLS-PSK (coaps://)


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast simulated time runs; tests shorten everything."""

    update_every: float | None = None  # default: 3/4 of the lifetime
    queue_window: float = 10.0  # listening window after each Register/Update/send
    install_delay: float = 0.05  # time in Updating before the reboot
    reboot_delay: float = 0.1  # off the air while rebooting
    retry_delay: float = 5.0  # after a failed Register
    deregister_timeout: float = 3.0  # Fleet.stop() gives up De-registering after this
    slow_block_delay: float = 0.5
    flash_size: int = 16 * 1024 * 1024
    reliability: Reliability = field(default_factory=Reliability)
    host: str = "127.0.0.1"  # address the device sockets bind to
