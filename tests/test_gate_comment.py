"""compare --format md, the pull-request comment: a verdict line naming its cause, only the
changed rows with the columns that explain them, unchanged rows collapsed, plain Markdown in
the table's units; and the size tolerance a team keeps (1%, 0% one flag away)."""

from __future__ import annotations

import numpy as np

from harness.report.compare import MISSING, REGRESSED, SAME, Thresholds, compare_results
from harness.report.compare_markdown import MAX_UNCHANGED_ROWS, comparison_markdown

from .test_compare import invoke, make_result, store_with_runs


def _runs(rng, n=6, **new_of_first):
    base = [make_result(f"m{i}", rng=rng, p50=400.0) for i in range(n)]
    new = [make_result(f"m{i}", rng=rng, p50=400.0, **(new_of_first if i == 0 else {})) for i in range(n)]
    return base, new


def test_verdict_line_names_the_cause_and_never_contradicts_itself():
    rng = np.random.default_rng(1)
    base, new = _runs(rng)
    only_missing = compare_results(base, new[1:])
    line = only_missing.summary()
    assert line.startswith("REGRESSED: 1 row missing in the new run"), line
    assert "regressed (" not in line and "0 regressed" not in line and "5 unchanged of 6 rows" in line

    both = compare_results(base, [make_result("m0", rng=rng, p50=400.0, size=60_000)] + new[1:5])
    line = both.summary()
    assert line.startswith("REGRESSED: 1 regressed (m0/fp32 size 50000 -> 60000 bytes (+20.0%)), "
                           "1 row missing in the new run"), line

    slow = compare_results(base, [make_result("m0", rng=rng, p50=600.0)] + new[1:])
    assert slow.summary().startswith("no regressions: 1 unconfirmed change (--unconfirmed warn)")
    strict = compare_results(base, [make_result("m0", rng=rng, p50=600.0)] + new[1:], Thresholds(unconfirmed="fail"))
    assert strict.failed and strict.summary().startswith("FAILED: 1 unconfirmed slowdown (--unconfirmed fail)")
    assert "unconfirmed change" not in strict.summary()  # counted once, as the cause

    clean = compare_results(base, new)
    assert clean.summary().startswith("no regressions: 6 unchanged of 6 rows"), clean.summary()


def test_comment_lists_only_changed_rows_with_their_columns_in_plain_markdown():
    rng = np.random.default_rng(2)
    base, new = _runs(rng, size=60_000)
    c = compare_results(base, new)
    md = comparison_markdown(c, "run-a", "run-b")
    first, *rest = md.splitlines()
    assert first.startswith("**REGRESSED**: 1 regressed (m0/fp32 size 50000 → 60000 bytes") and "`run-a`" in first
    main, details = md.split("<details>")
    assert "| m0 | fp32 |" in main and "| m1 |" not in main  # only the changed row above the fold
    header = next(line for line in main.splitlines() if line.startswith("| model"))
    assert "size" in header and "device" not in header and "thr" not in header  # one device: no column
    assert "mem MB" not in header and "artifact" not in header  # not what decides a verdict
    assert "<summary>5 unchanged rows</summary>" in details and details.count("| fp32 |") == 5
    assert "&gt;" not in md and "&lt;" not in md and "->" not in md
    assert " µs" in md and " ms" not in main.split("\n", 2)[2]  # 400 µs rows: the table's units, not 0.400 ms
    assert c.rows[0].verdict == REGRESSED and "**REGRESSED**" in main


def test_comment_shows_settings_columns_only_when_they_vary_and_counts_many_unchanged_rows():
    rng = np.random.default_rng(3)
    base = [make_result(f"m{i}", rng=rng, device="local" if i % 2 else "adb:X") for i in range(MAX_UNCHANGED_ROWS + 2)]
    c = compare_results(base, base[1:])
    md = comparison_markdown(c, "a", "b")
    assert "<details>" not in md and f"{MAX_UNCHANGED_ROWS + 1} unchanged rows (`--format json` lists them)" in md
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert [r.verdict for r in c.rows].count(MISSING) == 1 and "**MISSING**" in md
    assert "status" in header and "size" not in header  # a status moved (ok -> missing), no size did
    two = compare_results([make_result("x", device="adb:X"), make_result("y")], [])  # two devices among the changed
    assert "| device |" in next(line for line in comparison_markdown(two, "a", "b").splitlines()
                                if line.startswith("| model"))


def test_comment_escapes_pipes_and_tags_without_html_entities():
    from harness.report.compare_markdown import md_text

    assert md_text("a|b <script> x -> y <1e-16") == "a\\|b \\<script> x → y <1e-16"


def test_size_tolerance_default_passes_a_retrained_model_and_zero_percent_gates_every_byte(tmp_path, capsys):
    """The issue's case: the same architecture retrained, 76 bytes (+0.4%) bigger."""
    rng = np.random.default_rng(4)
    base = [make_result("cnn", rng=rng, size=19_000)]
    new = [make_result("cnn", rng=rng, size=19_076)]
    row = compare_results(base, new).rows[0]
    assert row.verdict == SAME and "size +0.4% (within --max-size-increase 1%)" in row.why
    assert compare_results(base, new, Thresholds(max_size_increase=0.0)).rows[0].verdict == REGRESSED
    assert compare_results(base, [make_result("cnn", rng=rng, size=19_400)]).rows[0].verdict == REGRESSED  # +2.1%
    db = tmp_path / "s.sqlite"
    s, (a, b) = store_with_runs(db, base, new)
    s.close()
    code, out, err = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "md", "--no-confirm")
    assert code == 0 and out.startswith("**no regressions**"), out + err
    code, out, err = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "md", "--no-confirm",
                            "--max-size-increase", "0%")
    assert code == 1 and out.startswith("**REGRESSED**: 1 regressed (cnn/fp32 size 19000 → 19076 bytes"), out + err
