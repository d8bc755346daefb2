"""What an ADB device is and how hot it runs, read with one shell command each.

Android answers through ``getprop``; Linux boards without it through ``uname``,
``/proc/cpuinfo`` and ``/etc/os-release``. Both share ``/sys`` for cores, frequencies,
governor and thermal zones. Stdlib only.
"""

from __future__ import annotations

import shlex

PROPS = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "abi": "ro.product.cpu.abi",
    "abilist": "ro.product.cpu.abilist",
    "release": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "board_platform": "ro.board.platform",
    "soc_model": "ro.soc.model",
    "soc_manufacturer": "ro.soc.manufacturer",
    "hardware": "ro.hardware",
}

_STATE_SCRIPT = r"""
for z in /sys/class/thermal/thermal_zone*/temp; do [ -r "$z" ] && echo "thermal=$(cat "$z" 2>/dev/null)"; done
[ -r /sys/class/power_supply/battery/temp ] && echo "battery=$(cat /sys/class/power_supply/battery/temp)"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/cpufreq/scaling_max_freq" ] && echo "limit.${c##*/}=$(cat "$c/cpufreq/scaling_max_freq")"
  [ -r "$c/cpufreq/scaling_cur_freq" ] && echo "cur.${c##*/}=$(cat "$c/cpufreq/scaling_cur_freq")"
done
[ -r /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor ] && echo "governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor)"
true
"""


def info_script(python: str, benchmark_model: str | None, remote_dir: str) -> str:
    lines = ["gp() { command -v getprop >/dev/null 2>&1 && getprop \"$1\" 2>/dev/null; }"]
    for key, prop in PROPS.items():
        lines.append(f"echo \"prop.{key}=$(gp {prop})\"")
    lines += [
        'echo "uname_m=$(uname -m 2>/dev/null)"',
        'echo "uname_r=$(uname -r 2>/dev/null)"',
        'echo "os_release=$(grep -m1 "^PRETTY_NAME=" /etc/os-release 2>/dev/null | cut -d= -f2- | tr -d \'"\')"',
        'echo "cpuinfo=$(grep -m1 -E "^(model name|Hardware|Model)[[:space:]]*:" /proc/cpuinfo 2>/dev/null | cut -d: -f2-)"',
        'echo "cores=$(ls -d /sys/devices/system/cpu/cpu[0-9]* 2>/dev/null | wc -l)"',
        'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do '
        '[ -r "$f" ] && echo "maxfreq=$(cat "$f")"; done',
    ]
    py = shlex.quote(python)
    probe = shlex.quote(
        "import importlib.util as u, platform; "
        "print(platform.python_version(), ','.join(m for m in "
        "('ai_edge_litert', 'tflite_runtime', 'tensorflow') if u.find_spec(m)))")
    lines.append(f'echo "python=$({py} -c {probe} 2>/dev/null)"')
    if benchmark_model:
        bm = shlex.quote(benchmark_model)
        lines.append(f'[ -e {bm} ] && echo "benchmark_model=present" || echo "benchmark_model=missing"')
    lines.append(f'echo "df=$(df {shlex.quote(remote_dir.rsplit("/", 1)[0] or "/")} 2>/dev/null | tail -1)"')
    return "\n".join(lines) + "\n" + _STATE_SCRIPT


def state_script() -> str:
    return _STATE_SCRIPT


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.append((key.strip(), value.strip()))
    return out


def _temp_c(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if value > 1000:  # millidegrees (thermal zones)
        value /= 1000.0
    elif value > 150:  # tenths (battery)
        value /= 10.0
    return value if -30 < value < 150 else None  # sensors report junk (-273, 0xffff)


def parse_state(text: str) -> dict:
    temps, limits, cur = [], {}, {}
    state: dict = {}
    for key, value in _pairs(text):
        if key == "thermal":
            t = _temp_c(value)
            if t is not None:
                temps.append(t)
        elif key == "battery":
            state["battery_temperature_c"] = _temp_c(value)
        elif key.startswith("limit.") and value.isdigit():
            limits[key[6:]] = int(value) // 1000
        elif key.startswith("cur.") and value.isdigit():
            cur[key[4:]] = int(value) // 1000
        elif key == "governor":
            state["governor"] = value
    state["temperature_c"] = max(temps) if temps else state.get("battery_temperature_c")
    if limits:
        state["freq_limit_mhz"] = limits
    if cur:
        state["freq_cur_mhz"] = cur
    return state


def parse_info(text: str) -> dict:
    props: dict[str, str] = {}
    facts: dict[str, str] = {}
    max_freqs: list[int] = []
    for key, value in _pairs(text):
        if key.startswith("prop."):
            props[key[5:]] = value
        elif key == "maxfreq" and value.isdigit():
            max_freqs.append(int(value) // 1000)
        else:
            facts.setdefault(key, value)
    android = bool(props.get("sdk"))
    info: dict = {"platform": "android" if android else "linux"}
    if android:
        info.update(
            model=props.get("model") or None,
            manufacturer=props.get("manufacturer") or None,
            os=f"Android {props.get('release', '?')} (SDK {props.get('sdk')})",
            sdk=int(props["sdk"]) if props.get("sdk", "").isdigit() else None,
            abi=props.get("abi") or facts.get("uname_m") or None,
            abilist=props.get("abilist") or None,
            soc=props.get("soc_model") or props.get("board_platform") or None,
            soc_manufacturer=props.get("soc_manufacturer") or None,
            board=props.get("board_platform") or None,
            hardware=props.get("hardware") or None,
        )
    else:
        info.update(
            model=facts.get("cpuinfo") or None,
            manufacturer=None,
            os=facts.get("os_release") or f"Linux {facts.get('uname_r', '')}".strip(),
            abi=facts.get("uname_m") or None,
        )
    info["kernel"] = facts.get("uname_r") or None
    info["cpu"] = facts.get("cpuinfo") or None
    cores = facts.get("cores", "")
    info["cores"] = int(cores) if cores.isdigit() and int(cores) > 0 else None
    info["max_freqs_mhz"] = sorted(set(max_freqs), reverse=True)
    info["max_freq_mhz"] = max(max_freqs) if max_freqs else None
    state = parse_state(text)
    info["governor"] = state.get("governor")
    info["temperature_c"] = state.get("temperature_c")
    py = facts.get("python", "").split()
    info["python"] = py[0] if py else None
    runtimes = py[1].split(",") if len(py) > 1 else []
    info["python_runtimes"] = runtimes
    runners = []
    if runtimes:
        runners.append("python")
    if facts.get("benchmark_model") == "present":
        runners.append("benchmark_model")
    info["runners"] = runners
    df = facts.get("df", "").split()
    if len(df) >= 4 and df[3].isdigit():
        info["free_kb"] = int(df[3])
    return info


def state_warnings(before: dict, after: dict, limit_c: float = 45.0, rise_c: float = 10.0) -> list[str]:
    """Warnings a result should carry: the device got hot, or the CPU was throttled."""
    warnings = []
    t0, t1 = before.get("temperature_c"), after.get("temperature_c")
    if t1 is not None and t1 > limit_c:
        warnings.append(f"device temperature {t1:.1f} C after the run is above {limit_c:g} C; "
                        "latency may be throttled (raise cooldown_s)")
    elif t0 is not None and t1 is not None and t1 - t0 >= rise_c:
        warnings.append(f"device temperature rose {t1 - t0:.1f} C during the run")
    l0, l1 = before.get("freq_limit_mhz") or {}, after.get("freq_limit_mhz") or {}
    dropped = [c for c in l0 if c in l1 and l1[c] < l0[c]]
    if dropped:
        c = dropped[0]
        warnings.append(f"CPU frequency limit dropped during the run ({c}: {l0[c]} -> {l1[c]} MHz): "
                        "thermal throttling")
    if before.get("governor") and after.get("governor") and before["governor"] != after["governor"]:
        warnings.append(f"CPU governor changed during the run ({before['governor']} -> "
                        f"{after['governor']})")
    return warnings
