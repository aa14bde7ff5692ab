"""The device side: a fleet of simulated LwM2M clients (Objects 1, 3, 5) in one process.

Stands in for real devices in tests, the demo and benchmarks, so it behaves as the OMA
LwM2M specification says a client does, not as our server happens to accept. Public API:
`Fleet`, `DeviceSpec`, `make_specs`, `Timing`, `Fault`, `make_package`; `fota simulate` is `cmd`.
"""

from reconciler.simulator.device import SimDevice
from reconciler.simulator.faults import Fault
from reconciler.simulator.firmware import make_package
from reconciler.simulator.fleet import Fleet, make_specs
from reconciler.simulator.spec import DeviceSpec, Timing

__all__ = [
    "DeviceSpec", "Fault", "Fleet", "SimDevice", "Timing", "make_package", "make_specs",
]
