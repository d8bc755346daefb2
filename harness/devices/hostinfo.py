"""Facts about a Linux machine read from /proc and /sys (shared by local and edge devices)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "Model"):
            return value.strip()
    return platform.processor() or None


def governor() -> str | None:
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def max_freq_mhz() -> float | None:
    value = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return int(value) / 1000 if value and value.isdigit() else None


def temperature_c() -> float | None:
    """Highest thermal zone reading, in degrees Celsius (None where there are no zones)."""
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        value = _read(str(zone))
        if value and value.lstrip("-").isdigit():
            temps.append(int(value) / 1000)
    return max(temps) if temps else None


def local_info() -> dict:
    return {
        "model": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "abi": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "max_freq_mhz": max_freq_mhz(),
        "governor": governor(),
        "temperature_c": temperature_c(),
        "python": platform.python_version(),
    }
