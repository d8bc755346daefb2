"""Device names and device profiles: how to reach a device and which runner to use.

Names: ``adb`` (ANDROID_SERIAL, else the only device of the adb server), ``adb:SERIAL``
(through the adb server), ``adb:HOST:PORT`` (adbd over TCP; direct unless the server already
lists that serial), ``adb:usb`` / ``adb:usb:SERIAL`` (adb-shell over USB). A profile is a
TOML file in ``devices/`` whose ``[device]`` table names the address and adds settings;
``--devices pixel7`` picks the profile whose ``name`` is ``pixel7``.

Only profiles the user wrote are loaded: the ``*.toml`` files directly in the profile folder
(``--profiles DIR``, else ``$TFLITE_HARNESS_DEVICES``, else ``./devices``), never a subfolder,
so ``devices/examples/`` stays a set of templates that nothing reads or connects to unasked.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.core.errors import UsageError

TRANSPORTS = ("auto", "server", "direct")
RUNNERS = ("python", "benchmark_model")
DEFAULT_REMOTE_DIR = "/data/local/tmp/tflite-harness"
_SAFE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")
_SERIAL = re.compile(r"^[A-Za-z0-9._:\-\[\]]+$")


@dataclass(frozen=True)
class DeviceAddress:
    kind: str  # "serial" (adb server) | "tcp" | "usb" | "default" (ANDROID_SERIAL / only device)
    serial: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "tcp":
            return f"adb:{self.host}:{self.port}"
        if self.kind == "usb":
            return f"adb:usb:{self.serial}" if self.serial else "adb:usb"
        if self.kind == "serial":
            return f"adb:{self.serial}"
        return "adb"


def parse_device_name(name: str) -> DeviceAddress:
    """``adb:127.0.0.1:5555`` -> DeviceAddress("tcp", "127.0.0.1:5555", "127.0.0.1", 5555)."""
    if not isinstance(name, str) or not (name == "adb" or name.startswith("adb:")):
        raise UsageError(f"device {name!r}: expected adb, adb:SERIAL, adb:HOST:PORT or adb:usb")
    rest = name[4:]
    if not rest:
        return DeviceAddress("default")
    if rest == "usb" or rest.startswith("usb:"):
        serial = rest[4:] or None
        return DeviceAddress("usb", serial=serial)
    if not _SERIAL.match(rest):
        raise UsageError(f"device {name!r}: the serial has characters adb never uses")
    host, sep, port = rest.rpartition(":")
    if sep and port.isdigit() and host:
        p = int(port)
        if not 0 < p < 65536:
            raise UsageError(f"device {name!r}: port {p} is out of range 1-65535")
        host = host.strip("[]")
        return DeviceAddress("tcp", serial=rest, host=host, port=p)
    if sep and not port.isdigit():
        # e.g. emulator-5554 has no colon; "host:" or "host:abc" is a typo
        raise UsageError(f"device {name!r}: expected adb:HOST:PORT with a numeric port")
    return DeviceAddress("serial", serial=rest)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    address: str
    transport: str = "auto"
    runner: str = "python"
    benchmark_model: Path | None = None  # host file pushed once (content-hash name)
    device_benchmark_model: str | None = None  # a binary already on the device
    remote_dir: str = DEFAULT_REMOTE_DIR
    python: str = "python3"
    cooldown_s: float = 0.0
    auth_timeout_s: float = 10.0
    server_host: str | None = None
    server_port: int | None = None
    temperature_limit_c: float = 45.0
    extra_args: dict[str, str] = field(default_factory=dict)  # extra benchmark_model flags
    source: Path | None = None

    @property
    def parsed(self) -> DeviceAddress:
        return parse_device_name(self.address)


_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "address": (str,), "transport": (str,), "runner": (str,),
    "benchmark_model": (str,), "device_benchmark_model": (str,), "remote_dir": (str,),
    "python": (str,), "cooldown_s": (int, float), "auth_timeout_s": (int, float),
    "server_host": (str,), "server_port": (int,), "temperature_limit_c": (int, float),
    "extra_args": (dict,),
}


def validate_remote_dir(path: str, where: str = "remote_dir") -> str:
    norm = os.path.normpath(path)
    if not _SAFE_DIR.match(path) or norm != path.rstrip("/") or norm.count("/") < 2:
        raise UsageError(
            f"{where} {path!r}: use an absolute folder of letters, digits, '._-/' at least two "
            f"levels deep (default {DEFAULT_REMOTE_DIR})")
    return norm


def profile_from_dict(raw: dict, where: str, base: Path | None = None) -> DeviceProfile:
    table = raw.get("device")
    if not isinstance(table, dict):
        raise UsageError(f"{where}: needs a [device] table")
    for key, value in table.items():
        if key not in _TYPES:
            raise UsageError(f"{where}: unknown key device.{key}; known: {', '.join(_TYPES)}")
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            raise UsageError(f"{where}: device.{key} has the wrong type ({type(value).__name__})")
    for key in ("name", "address"):
        if not table.get(key):
            raise UsageError(f"{where}: device.{key} is required")
    name = table["name"]
    if not re.match(r"^[A-Za-z0-9_.-]+$", name) or name == "local" or name.startswith("adb"):
        raise UsageError(f"{where}: device.name {name!r}: letters, digits, '_.-'; not local/adb*")
    parse_device_name(table["address"])
    if table.get("transport", "auto") not in TRANSPORTS:
        raise UsageError(f"{where}: device.transport must be one of {', '.join(TRANSPORTS)}")
    if table.get("runner", "python") not in RUNNERS:
        raise UsageError(f"{where}: device.runner must be one of {', '.join(RUNNERS)}")
    for key in ("cooldown_s", "auth_timeout_s"):
        if key in table and not 0 <= float(table[key]) <= 3600:
            raise UsageError(f"{where}: device.{key} must be between 0 and 3600 seconds")
    values = dict(table)
    values["remote_dir"] = validate_remote_dir(table.get("remote_dir", DEFAULT_REMOTE_DIR),
                                               f"{where}: device.remote_dir")
    if "benchmark_model" in table:
        p = Path(table["benchmark_model"]).expanduser()
        values["benchmark_model"] = p if p.is_absolute() or base is None else base / p
    if "device_benchmark_model" in table and not table["device_benchmark_model"].startswith("/"):
        raise UsageError(f"{where}: device.device_benchmark_model must be an absolute device path")
    if "python" in table and not re.match(r"^[A-Za-z0-9_./-]+$", table["python"]):
        raise UsageError(f"{where}: device.python {table['python']!r} must be a plain command/path")
    values["extra_args"] = {str(k): str(v) for k, v in table.get("extra_args", {}).items()}
    for key in ("cooldown_s", "auth_timeout_s", "temperature_limit_c"):
        if key in values:
            values[key] = float(values[key])
    return DeviceProfile(**values, source=Path(where) if base else None)


def load_profile(path: Path) -> DeviceProfile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: bad TOML: {exc}") from exc
    return profile_from_dict(raw, str(path), path.parent)


def profiles_dir() -> Path:
    """The user's profile folder: ``$TFLITE_HARNESS_DEVICES``, else ``devices`` here."""
    return Path(os.environ.get("TFLITE_HARNESS_DEVICES", "devices"))


def load_profiles(folder: Path | None = None) -> dict[str, DeviceProfile]:
    """The profiles the user wrote: ``*.toml`` directly in FOLDER (not its subfolders, so
    ``examples/`` is never read), keyed by name. Reads files only; contacts nothing."""
    folder = folder or profiles_dir()
    found: dict[str, DeviceProfile] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.toml")):
        profile = load_profile(path)
        if profile.name in found:
            raise UsageError(f"{path}: device name {profile.name!r} is also used by "
                             f"{found[profile.name].source}")
        found[profile.name] = profile
    return found


def resolve(name: str, folder: Path | None = None) -> DeviceProfile:
    """A profile for a device name: the named profile, or defaults for an ``adb...`` name."""
    if name == "adb" or name.startswith("adb:"):
        addr = parse_device_name(name)
        return DeviceProfile(name=addr.name, address=addr.name)
    profiles = load_profiles(folder)
    if name in profiles:
        return profiles[name]
    known = ", ".join(["local", "adb:SERIAL", "adb:HOST:PORT", *profiles])
    raise UsageError(f"unknown device {name!r}; use one of {known}")


def with_overrides(profile: DeviceProfile, **kw) -> DeviceProfile:
    return replace(profile, **{k: v for k, v in kw.items() if v is not None})
