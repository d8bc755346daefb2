"""Print the docs/cli.md section of one command from its click definition (a starting point to edit).

    .venv/bin/python scripts/cli_doc_section.py changes
    .venv/bin/python scripts/cli_doc_section.py lab resources

tests/test_docs_options.py keeps docs/cli.md in step with `--help`; this writes the rows it
wants for a new command or option, in the page's format.
"""

from __future__ import annotations

import sys

import click

from harness.cli.main import app


def section(path: list[str]) -> str:
    cmd: click.Command = app
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    title = " ".join(["tflite-harness", *path])
    lines = [f"## `{title}`", "", "```", f"{title} [OPTIONS]", "```", "",
             (cmd.help or "").split("\n\n")[0].replace("\n", " ").strip(), "",
             "| option | meaning |", "|---|---|"]
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.hidden:
            continue
        names = " / ".join(f"`{o}`" for o in p.opts + p.secondary_opts if o.startswith("--") or len(p.opts) == 1)
        text = (p.help or "").strip()
        if p.show_default and p.default is not None and not p.is_flag:
            text += f" Default `{p.default}`."
        if isinstance(p.type, click.Choice):
            text += " One of " + ", ".join(f"`{c}`" for c in p.type.choices) + "."
        lines.append(f"| {names} | {text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(section(sys.argv[1:]))
