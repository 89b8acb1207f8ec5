"""The `llmdocs` command: check this machine's set-up, and take a tour of every chapter.

Usage:

```console
$ llmdocs doctor                 # Python, torch, data packages, optional libraries, Chromium, fonts, disk
$ llmdocs doctor --json          # the same checks, as JSON
$ llmdocs tour                   # a menu of the chapters' demos: a number runs one, 0 all, q quits
$ llmdocs tour --all             # every demo; figures and samples in ./llmdocs-tour/
$ llmdocs tour --chapter gpt --chapter attention --out-dir figs
$ llmdocs tour --list            # the demos, with their chapters
```

`python -m llmdocs` is the same command. [`doctor`][llmdocs.cli.doctor] exits with status 1 when something
required is missing; [`tour`][llmdocs.cli.tour] runs the demos of [`llmdocs.cli.registry`][llmdocs.cli.registry].
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

import llmdocs
from llmdocs.cli import doctor, tour

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  llmdocs doctor                      check the set-up; exit status 1 if something required is missing
  llmdocs tour                        choose demos from a menu
  llmdocs tour --all --fast           every demo, shortened (seconds)
  llmdocs tour --chapter gpt          one chapter's demo
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' line breaks; show the default of every option that has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # keep `word-embeddings` whole


def build_parser() -> argparse.ArgumentParser:
    """The `llmdocs` argument parser, with its `doctor` and `tour` subcommands.

    Examples:
        >>> parser = build_parser()
        >>> args = parser.parse_args(["tour", "--chapter", "gpt", "--fast"])
        >>> args.command, args.chapter, args.fast
        ('tour', ['gpt'], True)
    """
    parser = argparse.ArgumentParser(
        prog="llmdocs",
        description="An executable course on large language models: check the set-up, then try every chapter.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmdocs {llmdocs.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module, summary in (
        ("doctor", doctor, "check Python, torch, data packages, tools, disk"),
        ("tour", tour, "run a short demo of each chapter with the shipped models"),
    ):
        sub = commands.add_parser(
            name,
            help=summary,
            description=module.DESCRIPTION,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=_HelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `llmdocs` with the given arguments (default: the command line).

    Args:
        argv: The arguments after the program name, e.g. `["tour", "--list"]`.

    Returns:
        The exit status: 0 on success; 1 when `doctor` finds something required missing or a demo was skipped;
        2 for a usage error (argparse exits with it); 130 after Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args, args.parser)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
