"""scripts/cpu_matrix.py: which CPU kernel levels it runs, which it skips and why, and how it reports them."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cpu_matrix.py"


@pytest.fixture(scope="module")
def matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpu_matrix", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_matrix"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def test_a_level_counts_only_when_the_process_really_runs_it(matrix: ModuleType) -> None:
    assert matrix.skip_reason("avx2", "AVX2") is None
    assert matrix.skip_reason("default", "DEFAULT") is None
    # asked for AVX-512 on an AVX2 CPU, torch silently runs AVX2: that level is skipped, with the reason
    assert matrix.skip_reason("avx512", "AVX2") == "CPU lacks avx512: torch runs AVX2 instead"
    assert matrix.skip_reason("avx2", "DEFAULT") == "CPU lacks avx2: torch runs DEFAULT instead"  # e.g. an ARM Mac
    # torch 2.13 on an AVX2-only CPU reports AVX512 when asked for it, then dies of an illegal instruction: the level
    # torch picks by itself (native) bounds the levels that run
    assert matrix.skip_reason("avx512", "AVX512", native="AVX2") == "CPU lacks avx512: torch picks AVX2 by itself"
    assert matrix.skip_reason("avx2", "AVX2", native="AVX512") is None
    assert matrix.skip_reason("default", "DEFAULT", native="SVE256") is None  # an unknown native level: as reported


def test_probe_starts_torch_at_the_requested_level(matrix: ModuleType) -> None:
    assert matrix.probe_capability("default") == "DEFAULT"  # every CPU has the portable kernels (one process)
    if "ATEN_CPU_CAPABILITY" not in os.environ:  # this process runs at torch's own choice too
        assert matrix.probe_capability(None) == torch.backends.cpu.get_cpu_capability()


def test_a_level_the_cpu_lacks_is_skipped_without_running_pytest(
    matrix: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(matrix, "probe_capability", lambda level, python=sys.executable: "AVX2")
    monkeypatch.setattr(matrix.subprocess, "run", lambda *a, **k: pytest.fail("pytest must not run"))
    result = matrix.run_level("avx512", [], [])
    assert (result.status, result.passed, result.note) == ("skipped", 0, "CPU lacks avx512: torch picks AVX2 by itself")
    # a torch that claims the level it is asked for, on a CPU without it
    claims = {None: "AVX2", "avx512": "AVX512"}
    monkeypatch.setattr(matrix, "probe_capability", lambda level, python=sys.executable: claims[level])
    assert matrix.run_level("avx512", [], []).status == "skipped"


def test_only_modules_with_marked_tests_are_collected(matrix: ModuleType) -> None:
    names = {p.name for p in matrix.numerics_files()}
    assert {"test_interop_hf.py", "test_interop_torch_nn.py", "test_gpt.py", "test_testing.py"} <= names
    assert "test_docs_fences.py" not in names and "test_cpu_matrix.py" not in names


def test_junit_counts_and_table(matrix: ModuleType, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="3" tests="20"/></testsuites>',
        encoding="utf-8",
    )
    assert matrix.count_junit(report) == (14, 3, 3)  # passed, failed (errors included), skipped
    rows = [
        matrix.LevelResult("default", "passed", 96, 0, 9.84),
        matrix.LevelResult("avx512", "skipped", note="CPU lacks avx512: torch runs AVX2 instead"),
    ]
    assert matrix.format_table(rows).splitlines() == [
        "level    status   passed failed seconds  note",
        "default  passed       96      0     9.8",
        "avx512   skipped       0      0     0.0  CPU lacks avx512: torch runs AVX2 instead",
    ]


def test_the_table_says_when_levels_overlap(matrix: ModuleType) -> None:
    # run side by side, the levels' seconds add up to more than the total: the table must say why
    rows = [matrix.LevelResult(level, "passed", 100, 0, 10.0) for level in ("default", "avx2", "avx512")]
    assert matrix.format_table(rows, jobs=2).splitlines()[-1] == (
        "seconds: wall-clock of each level; levels run 2 at a time, so they overlap"
    )
    assert matrix.format_table(rows, jobs=8).splitlines()[-1].endswith("levels run 3 at a time, so they overlap")
    assert len(matrix.format_table(rows, jobs=1).splitlines()) == 4  # one after another: no footer


def test_main_prints_the_overlap_and_the_wall_clock_total(
    matrix: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(matrix, "run_level", lambda level, *a: matrix.LevelResult(level, "passed", 5, 0, 2.0))
    assert matrix.main(["--levels", "default", "avx2", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "levels default, avx2 (2 at a time)" in out
    assert "levels run 2 at a time, so they overlap" in out
    assert re.search(r"all levels passed or skipped \([\d.]+ s wall-clock in all\)", out)
    with pytest.raises(SystemExit):
        matrix.main(["--jobs", "0"])
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
