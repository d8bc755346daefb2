"""`tflite-harness lab`: commands for a device lab on a Ray cluster (see docs/lab.md).

`lab resources` prints, for the devices attached to this host, the custom resources a
Ray worker node should be started with, so that each device's jobs run here, one at a
time. Argument parsing and printing only; it never imports Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("lab")
def lab() -> None:
    """A device lab: Ray worker hosts with phones attached (see docs/lab.md)."""


@lab.command("resources")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="A device attached to this host (adb:HOST:PORT, adb:SERIAL, a profile name). Repeatable.")
@click.option("--devices", "devices_csv", metavar="A,B", help="Comma-separated devices, like run --devices.")
@click.option("--no-server", is_flag=True, help="Leave out the adb server's devices.")
@click.option("--no-profiles", is_flag=True, help="Leave out the profiles in devices/.")
@click.option("--profiles", "profiles_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of your device profiles, *.toml directly in it (default: devices/; its subfolders, e.g. examples/, are not read).")
@click.option("-H", "server_host", default=None, help="adb server host (ANDROID_ADB_SERVER_HOST).")
@click.option("-P", "server_port", type=int, default=None, help="adb server port (default 5037).")
@click.option("--head", default="HEAD:6379", show_default=True, help="Head node address for the printed command.")
@click.option("--json", "as_json", is_flag=True, help="Print only the resources JSON.")
def resources_command(devices, devices_csv, no_server, no_profiles, profiles_dir, server_host, server_port,
                      head, as_json) -> None:
    """Print the `ray start --resources` value for the devices attached to this host."""
    from harness.executors.resources import host_devices, ray_start_command, resources_for

    names = list(devices) + [d.strip() for d in (devices_csv or "").split(",") if d.strip()]
    found, notes = host_devices(tuple(names), server_host=server_host, server_port=server_port,
                                profiles_dir=profiles_dir, use_server=not no_server, use_profiles=not no_profiles)
    res = resources_for(found)
    if as_json:
        click.echo(json.dumps(res, sort_keys=True))
        return
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if not found:
        click.echo("no devices attached here: no adb server devices, no --device, no profiles in devices/ "
                   "(templates: devices/examples/); "
                   "a worker without devices needs no --resources (it converts)")
        return
    for name in found:
        click.echo(f"{name:<32} -> {next(iter(resources_for([name])))}")
    click.echo("")
    click.echo(f"--resources '{json.dumps(res, sort_keys=True)}'")
    click.echo("")
    click.echo("start this host as a worker node with:")
    click.echo(f"  {ray_start_command(res, head)}")


def register(app: click.Group) -> None:
    app.add_command(lab)
