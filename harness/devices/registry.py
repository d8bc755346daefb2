"""Device names -> Device objects: `local`, later `adb:SERIAL`, `adb:HOST:PORT` and profiles."""

from __future__ import annotations

from harness.errors import UsageError


def validate_device_name(name: str) -> str:
    if name == "local":
        return name
    raise UsageError(f"unknown device {name!r}; use local")


def open_device(name: str):
    validate_device_name(name)
    from harness.devices.local import LocalDevice

    return LocalDevice()
