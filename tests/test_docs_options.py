"""docs/cli.md keeps every command's option list in step with its `--help` (issue 19 item 7).

Walks the CLI itself, so a command or option added later (by anyone) fails here until
docs/cli.md lists it under `## \\`tflite-harness COMMAND\\``, and an option the docs list but
the command lost fails too. Cheap: click's own objects, no subprocess.
"""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from harness.cli.main import app

from .conftest import ROOT

DOC = ROOT / "docs" / "cli.md"


def _commands(cmd: click.Command = app, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    """The root (its global options) and every runnable command, groups' subcommands included."""
    out = [(" ".join(("tflite-harness",) + path), cmd)] if not path or not isinstance(cmd, click.Group) else []
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            out += _commands(sub, path + (name,))
    return out


COMMANDS = dict(_commands())


def _sections() -> dict[str, str]:
    """docs/cli.md by `## \\`tflite-harness ...\\`` heading."""
    parts = re.split(r"^## `(tflite-harness[^`]*)`\s*$", DOC.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _documented(section: str) -> set[str]:
    """The options of a section's table: every `-x` / `--name` in the first cell of its rows."""
    found: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `-"):
            found |= set(re.findall(r"`(--?[A-Za-z][\w-]*)`", line.split("|")[1]))
    return found


def _in_help(name: str, cmd: click.Command) -> set[str]:
    args = name.split()[1:] + ["--help"]
    text = CliRunner().invoke(app, args).output
    opts = {o for p in cmd.params if isinstance(p, click.Option) and not p.hidden for o in p.opts + p.secondary_opts}
    missing = {o for o in opts if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)}
    assert not missing, f"{name} --help does not show {sorted(missing)}"
    return opts


def test_every_command_has_its_section_and_every_section_a_command():
    sections = _sections()
    assert sorted(set(COMMANDS) - set(sections)) == [], "add a `## `tflite-harness COMMAND`` section to docs/cli.md"
    assert sorted(set(sections) - set(COMMANDS)) == [], "docs/cli.md documents a command the CLI does not have"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_docs_list_exactly_the_options_of_help(name):
    documented = _documented(_sections().get(name, ""))
    in_help = _in_help(name, COMMANDS[name])
    assert sorted(in_help - documented) == [], f"docs/cli.md, {name}: options in --help but not in the docs"
    assert sorted(documented - in_help) == [], f"docs/cli.md, {name}: options in the docs but not in --help"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    head = text.split("\n## ", 1)[0]  # before the first section: what it is and the two commands
    assert "make demo" in head and "make test" in head
    for job in ("Compare conversions of my model", "Run on my phone", "Gate my CI", "Fix my int8 row",
                "A lab on Ray"):
        section = text.split(f"\n## {job}\n", 1)[1].split("\n## ", 1)[0]
        assert re.search(r"\]\(docs/[\w.-]+\.md(#[\w-]+)?\)\.?\s*$", section.strip()), f"{job}: end with a link"
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", text):
        assert (ROOT / link).is_file(), link


def _anchors(path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (code blocks skipped)."""
    found, fence = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        m = re.match(r"#{1,6} (.*)", line)
        if m and not fence:
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return found


def test_relative_links_of_the_readme_and_docs_resolve():
    """The reference moved into docs/: every relative link and #anchor still lands."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path) if path else page
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in _anchors(target)):
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert broken == []
