"""Devices -> Ray custom resources: one unit per device, on the node the device is attached to.

A device job asks for one unit of its device's resource, so Ray places it on the host
that has the device and runs one job per device at a time. Names are sanitized for Ray
(`adb:127.0.0.1:5555` -> `device_adb_127.0.0.1_5555`); the driver and `tflite-harness lab
resources` derive them the same way from the device name the campaign uses.
"""

from __future__ import annotations

import json
import re

PREFIX = "device_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def device_resource(name: str) -> str:
    """`adb:127.0.0.1:5555` -> `device_adb_127.0.0.1_5555`; profile `pixel7` -> `device_pixel7`."""
    return PREFIX + _UNSAFE.sub("_", name)


def host_devices(devices: tuple[str, ...] = (), *, server_host: str | None = None,
                 server_port: int | None = None, profiles_dir=None, use_server: bool = True,
                 use_profiles: bool = True) -> tuple[list[str], list[str]]:
    """Device names attached to this host: adb server devices (state `device`, only when a
    server already runs), profiles in devices/, and explicit names; plus notes."""
    from harness.devices import profiles as pf
    from harness.devices.adb.transport import server_address, server_devices

    names: list[str] = []
    notes: list[str] = []
    if use_server:
        host, port = server_address(server_host, server_port)
        try:
            for serial, state in server_devices(host, port):
                if state == "device":
                    names.append(f"adb:{serial}")
                else:
                    notes.append(f"adb:{serial} is {state}; left out")
        except Exception as exc:  # noqa: BLE001 - a broken server must not hide the other devices
            notes.append(f"adb server {host}:{port}: {' '.join(str(exc).split())[:200]}")
    for name in devices:
        pf.resolve(name, profiles_dir)  # a bad name is a usage error here, not on the cluster
        names.append(name)
    if use_profiles:
        names += [p.name for p in pf.load_profiles(profiles_dir).values()]
    return list(dict.fromkeys(names)), notes


def resources_for(names: list[str]) -> dict[str, float]:
    return {device_resource(n): 1 for n in names}


def ray_start_command(resources: dict[str, float], head: str = "HEAD:6379") -> str:
    return f"ray start --address {head} --resources '{json.dumps(resources, sort_keys=True)}'"
