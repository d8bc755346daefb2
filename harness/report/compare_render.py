"""`compare`'s output: the terminal (rich or plain), dict and JSON forms of a `Comparison`."""

from __future__ import annotations

import math

from harness.report.compare import (
    ADDED,
    IMPROVED,
    MISSING,
    REGRESSED,
    SAME,
    UNCONFIRMED,
    Comparison,
    RowComparison,
    key_label,
)
from harness.report.table import duration

COMPARE_COLUMNS = ["model", "flag set", "device", "thr", "xnn", "status", "artifact", "p50 base", "p50 new",
                   "p50 change [95% CI]", "confirmed [95% CI]", "p", "max abs", "accuracy", "size", "mem MB",
                   "verdict", "why"]


def _us(us: float | None) -> str:
    """The terminal table's units: three significant digits, µs under 1 ms."""
    return "-" if us is None else duration(us / 1000)


def _p_text(p: float) -> str:
    if p < 1e-16:
        return "<1e-16"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _pair(b, a, fmt: str) -> str:
    if b is None and a is None:
        return "-"
    fb = "-" if b is None else format(b, fmt)
    fa = "-" if a is None else format(a, fmt)
    return fb if fb == fa else f"{fb} -> {fa}"


def row_cells(r: RowComparison) -> list[str]:
    model, flag_set, device, threads, xnnpack, *_ = r.key
    _, _, new_device, new_threads, new_xnn, *_ = r.new_key or r.key
    device = _pair(device, new_device, "s")
    threads_text = _pair(threads, new_threads, "d")
    xnn_text = _pair("yes" if xnnpack else "no", "yes" if new_xnn else "no", "s")
    status = _pair(r.base_status, r.new_status, "s") if (r.base_status or r.new_status) else "-"
    lat = r.latency
    if lat:
        change = f"{lat.change:+.1%}"
        if lat.ci_low is not None:
            change += f" [{lat.ci_low:+.1%}, {lat.ci_high:+.1%}]"
        if lat.adjusted is not None:
            change += f" (machine-adjusted {lat.adjusted:+.1%})"
        p = "-" if lat.p_value is None else _p_text(lat.p_value)
        c = lat.confirmed
        confirmed = "-" if c is None else f"{c.change:+.1%} [{c.ci_low:+.1%}, {c.ci_high:+.1%}] x{c.rounds}"
        lat_cells = [_us(lat.base_p50_us), _us(lat.new_p50_us), change, confirmed, p]
    else:
        lat_cells = ["-", "-", "-", "-", "-"]
    sb, sa = r.size_bytes
    size = "-" if not (sb and sa) else (f"{sa / 1024:.1f} KB" if sa == sb else f"{sa / 1024:.1f} KB ({sa / sb - 1:+.1%})")
    return [model, flag_set, device, threads_text, xnn_text, status, r.identity or "-", *lat_cells,
            _pair(*r.max_abs, ".3g"), _pair(*r.accuracy, ".3f"), size, _pair(*r.peak_rss_mb, ".1f"),
            r.verdict, r.why]


def comparison_rich(c: Comparison, base_name: str, new_name: str):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(base_name)} -> {escape(new_name)}", header_style="bold")
    for h in COMPARE_COLUMNS:
        table.add_column(h, justify="left" if h in ("model", "flag set", "device", "status", "artifact", "verdict", "why")
                         else "right", overflow="fold")
    style = {REGRESSED: "bold red", MISSING: "bold red", UNCONFIRMED: "yellow", IMPROVED: "green", ADDED: "cyan",
             SAME: "dim"}
    for r in c.rows:
        cells = [escape(x) for x in row_cells(r)]
        i = COMPARE_COLUMNS.index("verdict")
        cells[i] = f"[{style[r.verdict]}]{cells[i]}[/]"
        table.add_row(*cells)
    return table


def comparison_dict(c: Comparison, base_name: str, new_name: str) -> dict:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    rows = []
    for r in c.rows:
        model, flag_set, device, threads, xnnpack, api, accel = r.key
        lat = r.latency
        rows.append({
            "model": model, "flag_set": flag_set, "device": device, "threads": threads, "xnnpack": xnnpack,
            "runtime_api": api, "accelerator": accel, "new_runtime": "/".join((r.new_key or r.key)[5:]),
            "verdict": r.verdict, "regressions": r.regressions, "improvements": r.improvements,
            "unconfirmed": r.unconfirmed, "notes": r.notes, "identity": r.identity,
            "status": {"base": r.base_status, "new": r.new_status},
            "latency": None if lat is None else {
                "base_p50_us": lat.base_p50_us, "new_p50_us": lat.new_p50_us, "change": clean(lat.change),
                "ci95": [clean(lat.ci_low), clean(lat.ci_high)] if lat.ci_low is not None else None,
                "p_value": lat.p_value, "significant": lat.significant, "verdict": lat.verdict,
                "machine_adjusted_change": clean(lat.adjusted),
                "confirmed": None if lat.confirmed is None else lat.confirmed.to_dict()},
            "remeasured": None if r.remeasured is None else {
                "device": r.remeasured.device, "base_p10_us": r.remeasured.base_us, "new_p10_us": r.remeasured.new_us,
                "base_medians_us": r.remeasured.base_medians_us,
                "new_medians_us": r.remeasured.new_medians_us, "orders": r.remeasured.orders,
                "seconds": r.remeasured.seconds, "error": r.remeasured.error},
            "max_abs": {"base": clean(r.max_abs[0]), "new": clean(r.max_abs[1])},
            "cosine": {"base": clean(r.cosine[0]), "new": clean(r.cosine[1])},
            "accuracy": {"base": r.accuracy[0], "new": r.accuracy[1]},
            "size_bytes": {"base": r.size_bytes[0], "new": r.size_bytes[1]},
            "peak_rss_mb": {"base": r.peak_rss_mb[0], "new": r.peak_rss_mb[1]},
        })
    t = c.thresholds
    m = c.machine
    return {"base": base_name, "new": new_name, "regressed": bool(c.regressed), "failed": c.failed,
            "exit_code": 1 if c.failed else 0, "summary": c.summary(),
            "thresholds": {"max_latency_regression": t.max_latency_regression, "alpha": t.alpha,
                           "max_drift_increase": t.max_drift_increase, "max_accuracy_drop": t.max_accuracy_drop,
                           "max_size_increase": t.max_size_increase, "noise_factor": t.noise_factor,
                           "unconfirmed": t.unconfirmed},
            "machine": None if m is None else {"rows": m.rows, "change": m.change, "spread": m.spread},
            "noise": c.noise, "stored_latency_limit": c.latency_limit,
            "confirmation": {"rounds": c.confirm_rounds, "seconds": c.confirm_seconds},
            "rows": rows}


def comparison_plain(c: Comparison, base_name: str, new_name: str) -> str:
    """`comparison_rich` as aligned plain text (same columns and cells, no colours), for
    tables too large for rich to lay out in reasonable time."""
    from harness.report.plain import plain_table

    right = {i for i, h in enumerate(COMPARE_COLUMNS)
             if h not in ("model", "flag set", "device", "status", "artifact", "verdict", "why")}
    return plain_table(COMPARE_COLUMNS, [row_cells(r) for r in c.rows], right=right,
                       title=f"{base_name} -> {new_name}")


def comparison_json(c: Comparison, base_name: str, new_name: str) -> str:
    """`comparison_dict` as JSON with one row per line: the same JSON as json.dumps(indent=1)
    but through the C encoder (indent forces the pure-Python one: seconds for 100k rows)."""
    import json

    data = comparison_dict(c, base_name, new_name)
    rows = data.pop("rows")
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items()]
    body = ",\n  ".join(map(json.dumps, rows))
    lines.append(f' "rows": [\n  {body}\n ]' if rows else ' "rows": []')
    return "\n".join(lines) + "\n}"


def comparison_junit(c: Comparison, base_name: str, new_name: str) -> str:
    """JUnit XML: one <testcase> per matched row (CI systems list them); a regression is a
    <failure>, an unconfirmed slowdown a <failure> under --unconfirmed fail and a <skipped>
    with its reason under warn, so it shows without failing the build."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name=f"tflite-harness compare {base_name} -> {new_name}")
    failures = skipped = 0
    for r in c.rows:
        model = r.key[0]
        case = ET.SubElement(suite, "testcase", classname=f"tflite-harness.{model}",
                             name=key_label(r.key).split("/", 1)[1])
        if r.verdict in (REGRESSED, MISSING) or (r.verdict == UNCONFIRMED and r.slower_unconfirmed
                                                 and c.thresholds.unconfirmed == "fail"):
            failures += 1
            ET.SubElement(case, "failure", message=r.why, type=r.verdict).text = r.why
        elif r.verdict == UNCONFIRMED:
            skipped += 1
            ET.SubElement(case, "skipped", message=r.why)
        ET.SubElement(case, "system-out").text = " | ".join(f"{h}: {v}" for h, v in
                                                            zip(COMPARE_COLUMNS, row_cells(r), strict=True))
    suite.set("tests", str(len(c.rows)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    ET.SubElement(suite, "system-out").text = c.summary()
    root = ET.Element("testsuites", name="tflite-harness compare", tests=str(len(c.rows)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
