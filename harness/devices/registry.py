"""Device names -> Device objects: `local`, `adb`, `adb:SERIAL`, `adb:HOST:PORT`, `adb:usb`,
and the names of profiles in `devices/*.toml` (see harness/devices/profiles.py)."""

from __future__ import annotations

from harness.core.errors import UsageError


def validate_device_name(name: str) -> str:
    if name == "local":
        return name
    from harness.devices.profiles import resolve

    try:
        resolve(name)  # adb names are parsed, profile names looked up; nothing is contacted
    except UsageError:
        raise
    return name


def open_device(name: str):
    validate_device_name(name)
    if name == "local":
        from harness.devices.local import LocalDevice

        return LocalDevice()
    from harness.devices.adb.device import AdbDevice

    return AdbDevice(name)
