"""Run the numerical tests under every CPU kernel level that PyTorch supports on this machine.

PyTorch picks its CPU kernels when it starts, from the instructions the processor has; the environment variable
``ATEN_CPU_CAPABILITY`` (``default``, ``avx2``, ``avx512``) forces a lower level. The levels round float32 sums
differently, so a tolerance tuned on one CPU can fail on another (see docs/conventions.md, "Numerical
tolerances"). This script reruns the tests marked ``numerics`` (equivalence, cache against full pass, resume
against an unbroken run, ...) once per level and prints a table; those also marked ``slow`` (a torchrun of
three processes) run once, in the main suite. A level above what the CPU has would silently
fall back to a lower one, so each level is first probed: a Python process started with the variable set reports
``torch.backends.cpu.get_cpu_capability()``, and a level it does not reach is skipped, with the reason.

Usage:
    python scripts/cpu_matrix.py                      # default, avx2, avx512; `make test` runs this
    python scripts/cpu_matrix.py --levels avx2 avx512 --jobs 1
    python scripts/cpu_matrix.py -- -k cache -x       # anything after -- goes to pytest

Exits 1 if a level fails (or its tests cannot run), 0 when every level passed or was skipped by the CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("default", "avx2", "avx512")
MARKER = "numerics"
SELECTION = f"{MARKER} and not slow"
PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


@dataclass
class LevelResult:
    """One row of the table: a kernel level and what happened to its run."""

    level: str
    status: str  # passed, failed, skipped or error
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    note: str = ""
    output: str = ""


def level_env(level: str | None) -> dict[str, str]:
    """The environment of a run at ``level``: ours, with the kernel level forced (None: torch's own choice, the
    best the CPU has) and one thread per process."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if level is not None:
        env["ATEN_CPU_CAPABILITY"] = level
    return {**env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def probe_capability(level: str | None, python: str = sys.executable) -> str:
    """The capability a fresh Python process reports when started with ``ATEN_CPU_CAPABILITY=level`` (None: without
    it, the level torch picks for this CPU)."""
    done = subprocess.run(
        [python, "-c", PROBE], env=level_env(level), capture_output=True, text=True, timeout=120, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"could not start torch with ATEN_CPU_CAPABILITY={level}: {done.stderr.strip()[-500:]}")
    return lines[-1].strip()


def skip_reason(level: str, reported: str, native: str | None = None) -> str | None:
    """None if a process asked for ``level`` runs it; otherwise why the level is skipped.

    Some torch builds fall back silently to the best level the CPU has when asked for a higher one, so a level
    counts as supported only when the process reports exactly that level. Others report the level asked for even
    where the CPU lacks its instructions (torch 2.13 reports AVX512 on an AVX2-only CPU, then dies of an illegal
    instruction): a level above ``native``, the level torch picks by itself, is skipped too.
    """
    if native is not None and native.lower() in LEVELS and LEVELS.index(level) > LEVELS.index(native.lower()):
        return f"CPU lacks {level}: torch picks {native} by itself"
    if reported.lower() == level.lower():
        return None
    return f"CPU lacks {level}: torch runs {reported} instead"


def numerics_files(tests_dir: Path = ROOT / "tests") -> list[Path]:
    """The test modules that mark at least one test ``numerics`` (collecting only these keeps each run short)."""
    return sorted(p for p in tests_dir.glob("test_*.py") if f"mark.{MARKER}" in p.read_text(encoding="utf-8"))


def count_junit(path: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a pytest JUnit XML report; errors count as failures."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def run_level(
    level: str, files: list[Path], pytest_args: list[str], selection: str = SELECTION, python: str = sys.executable
) -> LevelResult:
    """Probe ``level``, then run the tests of ``files`` that ``selection`` picks under it (or report why not)."""
    start = time.perf_counter()
    try:
        reason = skip_reason(level, probe_capability(level, python), probe_capability(None, python))
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        return LevelResult(level, "error", note=str(error), seconds=time.perf_counter() - start)
    if reason is not None:
        return LevelResult(level, "skipped", note=reason, seconds=time.perf_counter() - start)
    with tempfile.TemporaryDirectory(prefix=f"cpu-matrix-{level}-") as tmp:
        report = Path(tmp) / "report.xml"
        command = [python, "-m", "pytest", "-m", selection, "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        command += [str(f.relative_to(ROOT)) for f in files] + pytest_args
        done = subprocess.run(command, cwd=ROOT, env=level_env(level), capture_output=True, text=True, check=False)
        output = done.stdout + done.stderr
        seconds = time.perf_counter() - start
        if not report.is_file():
            return LevelResult(level, "error", seconds=seconds, note=f"pytest exit {done.returncode}", output=output)
        passed, failed, skipped = count_junit(report)
    if done.returncode == 0 and passed > 0:
        note = f"{skipped} skipped" if skipped else ""
        return LevelResult(level, "passed", passed, failed, seconds, note, output)
    note = f"no test '{selection}' ran" if passed + failed == 0 else f"pytest exit {done.returncode}"
    return LevelResult(level, "failed", passed, failed, seconds, note, output)


def format_table(results: list[LevelResult], jobs: int = 1) -> str:
    """The results as a fixed-width table, one row per level, and a footer when levels ran side by side.

    Each level's seconds are its own wall-clock time. With ``jobs`` > 1 the levels overlap, so the column adds up
    to more than the run took; the footer says so.
    """
    lines = [f"{'level':<8} {'status':<8} {'passed':>6} {'failed':>6} {'seconds':>7}  note"]
    for r in results:
        lines.append(f"{r.level:<8} {r.status:<8} {r.passed:>6} {r.failed:>6} {r.seconds:>7.1f}  {r.note}".rstrip())
    at_a_time = min(jobs, len(results))
    if at_a_time > 1:
        lines.append(f"seconds: wall-clock of each level; levels run {at_a_time} at a time, so they overlap")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the tests marked numerics under each ATEN_CPU_CAPABILITY level this CPU supports.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS, help="kernel levels to run")
    parser.add_argument(
        "--jobs", type=int, default=min(len(LEVELS), os.cpu_count() or 1), help="levels run at the same time"
    )
    parser.add_argument("-m", dest="selection", default=SELECTION, help="pytest marker expression of the tests")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    jobs = min(args.jobs, len(args.levels))

    files = numerics_files()
    if not files:
        print(f"no test module under tests/ marks a test {MARKER}", file=sys.stderr)
        return 1
    print(
        f"CPU-capability matrix: tests '{args.selection}' of {len(files)} modules, levels {', '.join(args.levels)}"
        f" ({jobs} at a time)"
    )
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda level: run_level(level, files, args.pytest_args, args.selection), args.levels))
    for r in results:
        if r.status in ("failed", "error") and r.output:
            print(f"\n---- {r.level}: pytest output (last 60 lines) ----")
            print("\n".join(r.output.rstrip().splitlines()[-60:]))
    print(format_table(results, jobs))
    bad = [r.level for r in results if r.status in ("failed", "error")]
    print(f"{'FAILED at ' + ', '.join(bad) if bad else 'all levels passed or skipped'} "
          f"({time.perf_counter() - start:.1f} s wall-clock in all)")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
