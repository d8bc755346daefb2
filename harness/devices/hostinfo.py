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


def state_now() -> dict:
    """What can change between jobs and skew them: temperature, governor, current frequency."""
    cur = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return {
        "temperature_c": temperature_c(),
        "governor": governor(),
        "freq_mhz": int(cur) / 1000 if cur and cur.isdigit() else None,
    }


def state_warnings(before: dict, after: dict, max_rise_c: float = 10.0, hot_c: float = 80.0) -> list[str]:
    """Throttling and heat seen around one job, as row warnings."""
    out = []
    t0, t1 = before.get("temperature_c"), after.get("temperature_c")
    if t0 is not None and t1 is not None and t1 - t0 > max_rise_c:
        out.append(f"temperature rose {t1 - t0:.0f} C during the job")
    if t1 is not None and t1 >= hot_c:
        out.append(f"device hot ({t1:.0f} C): throttling likely")
    f0, f1 = before.get("freq_mhz"), after.get("freq_mhz")
    if f0 and f1 and f1 < 0.8 * f0:
        out.append(f"CPU frequency fell from {f0:.0f} to {f1:.0f} MHz (throttled)")
    gov = after.get("governor")
    if gov and gov != "performance":
        out.append(f"CPU governor is {gov!r}; set 'performance' for stable numbers")
    return out
