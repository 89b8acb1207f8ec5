"""`llmdocs tour`: run each chapter's short demo with the shipped models, from a menu or all at once.

Every demo of [`REGISTRY`][llmdocs.cli.registry.REGISTRY] (one per chapter, in course order) is seeded, prints what
it shows and writes its figures into one folder (`--out-dir`, default `./llmdocs-tour/`). Without options the
command shows a numbered menu: a number runs that demo, `0` runs them all, `q` quits. `--all`, `--chapter NAME`
(repeatable) and `--list` do the same without asking; `--fast` shortens every demo to seconds (the tests run the whole
tour that way). How a new chapter adds its demo: see [`llmdocs.cli.registry`][llmdocs.cli.registry].
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import llmdocs.cli.demos  # noqa: F401  (registers the demos)
from llmdocs.cli.registry import REGISTRY, Demo

__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "format_list", "menu", "parse_choice", "run", "run_demos"]

DESCRIPTION = """\
Run a short demo of each chapter with the shipped models: seconds to about a minute in all on a laptop CPU.
Each demo is seeded, prints what it shows and writes its figures into --out-dir.

Without options a numbered menu is shown: a number (or a name) runs that demo, 0 runs them all, q quits.
"""
EPILOG = """\
examples:
  llmdocs tour --list                        the demos and their chapters
  llmdocs tour --all                         every demo, in course order
  llmdocs tour --chapter gpt --chapter attention --out-dir figures
  llmdocs tour --all --fast                  every demo in seconds (what the tests run)
"""
DEFAULT_OUT_DIR = Path("llmdocs-tour")
RULE = "=" * 100


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is inside it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        return str(path.resolve())
    return str(path.resolve()) if relative.startswith("..") else relative


def format_list(demos: Sequence[Demo] = REGISTRY) -> str:
    """The demos as a numbered list: name, chapter title and page, then the description.

    Examples:
        >>> print(format_list()[:63])
         1  word-embeddings  Word embeddings: CBOW before Transformers
    """
    width = max(len(demo.name) for demo in demos)
    lines = []
    for number, demo in enumerate(demos, start=1):
        lines.append(f"{number:>2}  {demo.name:<{width}}  {demo.title}  (docs/{demo.page})")
        lines += textwrap.wrap(
            demo.description, 100, initial_indent=" " * (width + 6), subsequent_indent=" " * (width + 6)
        )
    return "\n".join(lines)


def run_demos(demos: Sequence[Demo], out_dir: Path, fast: bool) -> int:
    """Run demos one after the other, each under a header; a demo whose data is missing is reported and skipped.

    Args:
        demos: The demos to run, in order.
        out_dir: Folder for their figures (created if needed).
        fast: Pass `fast=True` to every demo (seconds each).

    Returns:
        0 if every demo ran, 1 if one was skipped for a missing package.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = []
    start_all = time.perf_counter()
    for number, demo in enumerate(demos, start=1):
        print(
            f"\n{RULE}\n[{number}/{len(demos)}] {demo.title}   (llmdocs tour --chapter {demo.name}; docs/{demo.page})"
        )
        print(textwrap.fill(demo.description, 100) + f"\n{RULE}")
        start = time.perf_counter()
        try:
            paths = demo.function(out_dir, fast)
        except ImportError as err:  # includes MissingDataPackageError, whose message is the install command
            print(f"\nskipped {demo.name}: {err}\n(`llmdocs doctor` checks everything the demos need)")
            skipped.append(demo.name)
            continue
        written = ", ".join(_shown(p) for p in paths) or "nothing"
        print(f"\n[{demo.name}: {time.perf_counter() - start:.1f} s; wrote {written}]")
    ran = len(demos) - len(skipped)
    print(f"\n{ran} of {len(demos)} demo(s) in {time.perf_counter() - start_all:.1f} s; files in {_shown(out_dir)}/")
    if skipped:
        print(f"skipped: {', '.join(skipped)}")
    return int(bool(skipped))


def parse_choice(answer: str, demos: Sequence[Demo] = REGISTRY) -> list[Demo]:
    """The demos chosen at the menu: numbers or names separated by spaces or commas; `0` is all of them.

    Raises:
        ValueError: For anything else, with a message that says what to type.

    Examples:
        >>> [demo.name for demo in parse_choice("2, gpt")]
        ['attention', 'gpt']
        >>> len(parse_choice("0")) == len(REGISTRY)
        True
    """
    chosen: list[Demo] = []
    for token in filter(None, re.split(r"[\s,]+", answer.strip().lower())):
        if token == "0":
            return list(demos)
        by_name = [demo for demo in demos if demo.name == token]
        if token.isdigit() and 1 <= int(token) <= len(demos):
            chosen.append(demos[int(token) - 1])
        elif by_name:
            chosen += by_name
        else:
            raise ValueError(f"not a choice: {token} (enter 0-{len(demos)}, a name, or q)")
    return list(dict.fromkeys(chosen))


def menu(out_dir: Path, fast: bool, ask: Callable[[str], str] = input, demos: Sequence[Demo] = REGISTRY) -> int:
    """The interactive tour: show the numbered demos, run what is chosen, until `q` or the end of the input.

    An answer that is not on the menu gets a one-line reminder (`not a choice: 9 (enter 0-4, a name, or q)`) and
    the question again; the menu is shown again after each run. Ctrl-C is left to the caller
    ([`main`][llmdocs.cli.main] exits with status 130).

    Args:
        out_dir: Folder for the figures.
        fast: Shorten every demo.
        ask: Reads one answer (`input` by default; the tests pass their own).
        demos: The demos on the menu.

    Returns:
        1 if a demo was skipped for a missing package, else 0.
    """
    status = 0
    question = f"Run which demo? [0-{len(demos)}, a name, or q] "
    show_menu = True
    while True:
        if show_menu:  # at the start and after each run; a mistyped answer only gets a one-line reminder
            print(f"\nllmdocs tour: a short demo of each chapter (figures go to {_shown(out_dir)}/)\n")
            print(format_list(demos))
            print(" 0  all of them, one after the other\n q  quit")
        try:
            answer = ask("\n" + question if show_menu else question)
        except EOFError:  # Ctrl-D, or the end of piped input: leave the shell prompt on a line of its own
            print("\n(end of input: quitting)")
            return status
        if answer.strip().lower() in {"q", "quit", "exit"}:
            return status
        try:
            chosen = parse_choice(answer, demos)
        except ValueError as err:
            print(err)
            show_menu = False
            continue
        show_menu = bool(chosen)
        if chosen:
            status = max(status, run_demos(chosen, out_dir, fast))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `llmdocs tour`."""
    names = [demo.name for demo in REGISTRY]
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--list", action="store_true", help="list the demos and exit")
    which.add_argument("--all", action="store_true", help="run every demo, in course order, without the menu")
    which.add_argument(
        "--chapter",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run this chapter's demo (repeatable); one of: {', '.join(names)}",
    )
    parser.add_argument(
        "--out-dir",
        type=_folder_name,
        default=DEFAULT_OUT_DIR,
        metavar="DIR",
        help="folder for the figures and samples the demos write",
    )
    parser.add_argument("--fast", action="store_true", help="fewer tokens and steps: every demo in seconds")


def _folder_name(text: str) -> Path:
    """argparse type of --out-dir: a non-empty path (an empty one would mean the current folder by accident)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder name, not an empty string (use . for the current folder)")
    return Path(text)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the tour as the options say; return the exit code."""
    if args.list:
        print(format_list())
        return 0
    if args.out_dir.exists() and not args.out_dir.is_dir():
        parser.error(f"argument --out-dir: {str(args.out_dir)!r} exists and is not a folder")
    try:  # now, as a usage error, rather than as a traceback once the first demo has run
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the way (NotADirectoryError), no permission, a read-only or virtual fs
        reason = err.strerror or str(err)
        blocking = next((p for p in args.out_dir.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            reason = f"{str(blocking)!r} is a file, not a folder"
        parser.error(f"argument --out-dir: cannot create the folder {str(args.out_dir)!r}: {reason}")
    if args.all:
        return run_demos(REGISTRY, args.out_dir, args.fast)
    if args.chapter:
        return run_demos(
            [d for name in dict.fromkeys(args.chapter) for d in REGISTRY if d.name == name], args.out_dir, args.fast
        )
    return menu(args.out_dir, args.fast)
