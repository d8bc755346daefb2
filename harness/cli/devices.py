"""`tflite-harness devices`: which devices are reachable, and what they are.

Lists the adb server's devices (only when a server already runs, unless --start-server),
every `--device` given, and the profiles the user wrote in `devices/` (never the templates
in `devices/examples/`), each with its info (model, OS,
ABI, SoC, cores, frequency, governor, temperature, usable runners) or the one-line reason
it cannot be reached. Argument parsing and printing only; imports lazily.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click


def _start_server(host: str, port: int) -> str | None:
    adb = shutil.which("adb")
    if adb is None:
        return "adb is not installed (apt-get install adb, or Android SDK platform-tools)"
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(port))
    if host not in ("127.0.0.1", "localhost"):
        return f"cannot start an adb server on another host ({host})"
    r = subprocess.run([adb, "start-server"], env=env, capture_output=True, text=True,
                       timeout=30, check=False)
    return None if r.returncode == 0 else f"adb start-server failed: {r.stderr.strip()[:200]}"


def _targets(devices: tuple[str, ...], host: str, port: int, start: bool, folder: Path | None):
    """[(name, profile or None, state note)] in display order, without duplicates."""
    from harness.devices import profiles as pf
    from harness.devices.adb.transport import server_devices, server_running

    rows: list[tuple[str, object, str]] = []
    seen: set[str] = set()
    notes: list[str] = []
    if start and not server_running(host, port):
        problem = _start_server(host, port)
        if problem:
            notes.append(problem)
    for serial, state in server_devices(host, port):
        name = f"adb:{serial}"
        profile = pf.DeviceProfile(name=name, address=name, transport="server",
                                   server_host=host, server_port=port)
        rows.append((name, profile if state == "device" else None, state))
        seen.add(name)
    for name in devices:
        if name not in seen:
            rows.append((name, pf.resolve(name, folder), ""))
            seen.add(name)
    for profile in pf.load_profiles(folder).values():
        if profile.name not in seen:
            rows.append((profile.name, profile, ""))
            seen.add(profile.name)
    return rows, notes


def _probe(name: str, profile, state: str, timeout: float) -> dict:
    from dataclasses import replace

    from harness.core.errors import HarnessError
    from harness.devices.adb.device import AdbDevice
    from harness.devices.adb.transport import TransportError

    if profile is None:
        hint = {"unauthorized": "confirm the 'Allow USB debugging' prompt on the device",
                "offline": "reconnect the cable or run `adb reconnect`"}.get(state, "")
        return {"device": name, "state": state, "error": f"{state}; {hint}".rstrip("; ")}
    device = None
    try:
        device = AdbDevice(replace(profile, auth_timeout_s=min(profile.auth_timeout_s, timeout)))
        info = device.info()
        info["state"] = "device"
        info["device"] = name
        return info
    except (HarnessError, TransportError, ValueError) as exc:
        return {"device": name, "state": "unreachable", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one odd device must not hide the others
        return {"device": name, "state": "unreachable",
                "error": f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    finally:
        if device is not None:
            device.close()


def _fmt(value) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@click.command("devices")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="Also probe this device (adb:HOST:PORT, adb:SERIAL, a profile name). Repeatable.")
@click.option("-H", "server_host", default=None, help="adb server host (ANDROID_ADB_SERVER_HOST).")
@click.option("-P", "server_port", type=int, default=None,
              help="adb server port (ANDROID_ADB_SERVER_PORT, default 5037).")
@click.option("--start-server", is_flag=True, help="Start an adb server when none runs.")
@click.option("--profiles", "profiles_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of your device profiles, *.toml directly in it (default: devices/; its subfolders, e.g. examples/, are not read).")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for each device to accept our key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def devices_command(devices, server_host, server_port, start_server, profiles_dir, timeout, as_json):
    """List reachable devices (adb server, --device, profiles) with their info."""
    from harness.devices.adb.transport import server_address

    host, port = server_address(server_host, server_port)
    targets, notes = _targets(tuple(devices), host, port, start_server, profiles_dir)
    found = [_probe(name, profile, state, timeout) for name, profile, state in targets]
    if as_json:
        click.echo(json.dumps({"adb_server": f"{host}:{port}", "notes": notes, "devices": found},
                              indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    if not found:
        console.print(f"no devices: no adb server devices on {host}:{port}, no --device, no "
                      "profiles in devices/ (copy a template from devices/examples/; see docs/devices.md)")
        return
    table = Table(title="devices")
    for col in ("device", "transport", "model", "os", "abi", "soc", "cores", "max MHz",
                "governor", "temp C", "runners"):
        table.add_column(col)
    for d in found:
        if d.get("error"):
            table.add_row(d["device"], "-", f"[red]{d['error']}[/]", *["-"] * 8)
            continue
        table.add_row(d["device"], _fmt(d.get("transport")), _fmt(d.get("model")), _fmt(d.get("os")),
                      _fmt(d.get("abi")), _fmt(d.get("soc")), _fmt(d.get("cores")),
                      _fmt(d.get("max_freq_mhz")), _fmt(d.get("governor")),
                      _fmt(d.get("temperature_c")), _fmt(d.get("runners")))
    console.print(table)


def register(app: click.Group) -> None:
    app.add_command(devices_command)
