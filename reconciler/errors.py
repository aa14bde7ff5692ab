"""The one error tree of fota-gitops, shared by every layer.

Two exception kinds drive the controller (as Leshan and controller-runtime do):
`TemporaryError` -> retry with backoff, `WaitingError` -> not a failure, wait for the
device to speak (a sleeping queue-mode device). Terminal outcomes (stalled until the
desired state changes) are decided by the engine from Update Result codes, not raised.
aiocoap exceptions are translated into these inside `reconciler.lwm2m` only.
"""

from __future__ import annotations


class FotaError(Exception):
    """Base of every error fota-gitops raises on purpose."""


class TemporaryError(FotaError):
    """Worth retrying after a backoff: timeouts, lost connections, 5.xx answers."""


class WaitingError(FotaError):
    """Nothing is wrong; the device cannot be reached until it speaks again."""


class DeviceTimeout(TemporaryError):
    """A request to a device got no answer in time."""


class DeviceNotRegistered(WaitingError):
    """The endpoint has no live registration."""


class DeviceMoved(WaitingError):
    """The device registered again from another address while a request to its old one
    waited for an answer that cannot come; the next request goes to the new address."""


class RequestQueued(WaitingError):
    """A queue-mode device is asleep; the request waits for its next Register/Update."""


class DeviceRequestFailed(FotaError):
    """A device answered with a CoAP error code (for example 4.04, 4.05, 4.06, 5.01)."""

    def __init__(self, path: str, code: str, message: str = "") -> None:
        super().__init__(f"{path}: device answered {code}{': ' + message if message else ''}")
        self.path = path
        self.code = code  # dotted form, "4.04"


class ManifestError(FotaError):
    """Desired state that failed validation; carries every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StateFileInUse(FotaError):
    """Another process already writes this state file; two writers could execute one
    download twice."""


class NotOwner(FotaError):
    """A fenced write found the device owned by another node, or at a later epoch: a
    Register there took it over, so this node must not act on it (above all: no
    Execute)."""


class NoSlot(FotaError):
    """A write that would start an update found every `maxConcurrent` slot of its
    collection taken (by any node)."""
