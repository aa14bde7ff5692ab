"""`diff()`: what separates one device from its desired state, as one frozen `Delta`.

Pure: it joins the desired snapshot with the device's last report and registration and
names the target and the current image (the image of the device's collection whose
version equals the trimmed /3/0/3). The controller calls it on every reconcile; `decide()`
decides from the result alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.desired import (
    DesiredState,
    Device,
    DriftPolicy,
    FirmwareImage,
    MaintenanceWindow,
    Management,
)
from reconciler.model.lwm2m import Registration
from reconciler.model.observed import DeviceReport, PushStop


@dataclass(frozen=True, slots=True)
class Delta:
    device_id: str
    revision: str
    device: Device | None
    management: Management
    target: FirmwareImage | None  # None: hands off (disabled, unknown device, no target)
    current: FirmwareImage | None  # the image the device runs, when it is one of ours
    report: DeviceReport | None
    registration: Registration | None
    awake: bool = True  # not queue mode, or inside the window after it spoke
    observing: bool = False  # an Observe on /5/0/3 and /5/0/5 is active
    can_observe: bool = True  # the device accepts Observe (else poll)
    # When this server process started: an attempt or phase begun before it was disturbed
    # by our restart, and what that costs is ours, never the device's retries.
    server_started: float = 0.0
    # The collection's maintenance windows that apply to this device (by its tags).
    windows: tuple[MaintenanceWindow, ...] = ()
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    retry: int = 0  # the device's retry counter in git (its own plus its collection's)
    # When the server last finished delivering the device's package (the last block of
    # a pull served, a push's last block taken; None: not in this registration): from
    # then on the device has what it needs to report Downloaded.
    delivered_at: float | None = None
    # Push delivery: a push to the device runs now, and how its latest push ended early
    # (None: none did since this server started, or the push went on since).
    pushing: bool = False
    push_stop: PushStop | None = None

    @property
    def managed(self) -> bool:
        return self.device is not None and self.management is not Management.DISABLED

    @property
    def reported_version(self) -> str | None:
        if self.report is None or self.report.firmware_version is None:
            return None
        return self.report.firmware_version.strip()

    @property
    def on_target(self) -> bool:
        """True only when the device reported exactly the target's version."""
        return self.target is not None and self.reported_version == self.target.version

    @property
    def report_fresh(self) -> bool:
        """The report was read after the device's latest Register: its /3/0/3 is current
        (the firmware version changes only across a reboot, which re-registers)."""
        if self.report is None or self.registration is None:
            return False
        return self.report.reported_at >= self.registration.registered_at


def diff(
    desired: DesiredState,
    device_id: str,
    report: DeviceReport | None,
    registration: Registration | None,
    *,
    awake: bool = True,
    observing: bool = False,
    can_observe: bool = True,
    server_started: float = 0.0,
    delivered_at: float | None = None,
    pushing: bool = False,
    push_stop: PushStop | None = None,
) -> Delta:
    """Join desired and observed facts about one device; never raises for unknown ids."""
    device = desired.devices.get(device_id)
    management = desired.management_of(device) if device else Management.DISABLED
    target_id = desired.effective_target(device) if device else None
    target = desired.images.get(target_id) if target_id else None
    current = None
    collection = desired.collections.get(device.collection_id) if device else None
    windows: tuple[MaintenanceWindow, ...] = ()
    if collection is not None and collection.rollout.windows:
        assert device is not None
        windows = tuple(w for w in collection.rollout.windows if w.applies_to(device.tags))
    if device is not None and report is not None and report.firmware_version is not None:
        current = desired.image_by_version(device.collection_id, report.firmware_version)
    return Delta(
        device_id=device_id,
        revision=desired.revision,
        device=device,
        management=management,
        target=target,
        current=current,
        report=report,
        registration=registration,
        awake=awake,
        observing=observing,
        can_observe=can_observe,
        server_started=server_started,
        windows=windows,
        drift_policy=collection.drift_policy if collection else DriftPolicy.CORRECT,
        retry=desired.retry_of(device) if device else 0,
        delivered_at=delivered_at,
        pushing=pushing,
        push_stop=push_stop,
    )
