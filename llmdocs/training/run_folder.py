"""A training run's folder: one run per ``--out-dir``, and ``--resume`` continues *that* run.

The loop's checkpoints make a resumed run bit-identical to an unbroken one ([loop][llmdocs.training.loop]), but only
if the run is resumed with the settings it started with: a resume with another LoRA alpha, learning rate or data
would silently continue a different run (and, for an adapter, save weights trained with one scaling under
another). So a fresh run writes its settings to ``<out-dir>/run_args.json``; ``--resume`` reads them back and refuses
any difference, naming each flag, before anything is built. Only the flags that change the budget or where the
outputs go (``--minutes``, ``--threads``, ``--device``, ``--json`` ...) may differ.

The training scripts call [check_run_folder][llmdocs.training.run_folder.check_run_folder] right after parsing
their flags and [save_run_settings][llmdocs.training.run_folder.save_run_settings] when a fresh run starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmdocs.records import write_record
from llmdocs.training.checkpoint import latest_checkpoint

__all__ = ["RUN_ARGS", "check_run_folder", "run_settings", "save_run_settings", "settings_changes"]

RUN_ARGS = "run_args.json"
"""The file of a run's folder that holds its settings, written when the run starts."""

_MISSING = object()  # a setting that one side does not record


def run_settings(args: argparse.Namespace, may_change: Collection[str]) -> dict[str, Any]:
    """What defines the run that ``args`` trains: every flag but those in ``may_change``, as JSON values.

    Args:
        args: The parsed flags (defaults already resolved, e.g. a learning rate chosen per method).
        may_change: The ``dest`` names of the flags a resume may change (budget, outputs).

    Returns:
        The settings (tuples as lists, so that they compare equal to the file's).

    Examples:
        >>> run_settings(argparse.Namespace(lr=1e-3, minutes=5.0, targets=("q", "v")), may_change={"minutes"})
        {'lr': 0.001, 'targets': ['q', 'v']}
    """
    settings = {name: value for name, value in vars(args).items() if name not in may_change}
    return json.loads(json.dumps(settings))


def settings_changes(saved: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The flags whose values differ between a run's ``saved`` settings and ``settings``, as ``"--flag old -> new"``.

    Examples:
        >>> settings_changes({"lora_alpha": 32.0, "packing": False}, {"lora_alpha": 64.0, "packing": False})
        ['--lora-alpha 32.0 -> 64.0']
    """

    def shown(value: Any) -> str:
        if value is _MISSING:
            return "(not recorded)"
        if isinstance(value, bool):
            return "on" if value else "off"
        return " ".join(map(str, value)) if isinstance(value, list) else str(value)

    names = [*settings, *(name for name in saved if name not in settings)]
    return [
        f"--{name.replace('_', '-')} {shown(saved.get(name, _MISSING))} -> {shown(settings.get(name, _MISSING))}"
        for name in names
        if saved.get(name, _MISSING) != settings.get(name, _MISSING)
    ]


def check_run_folder(
    out_dir: str | Path, resume: bool, settings: dict[str, Any], may_change: Collection[str] = ()
) -> None:
    """End with a one-line message unless ``out_dir`` suits ``resume``; call it before anything is built.

    A fresh run needs a folder (or a path to create) without checkpoints, so that it never mixes its checkpoints
    with another run's. A resume needs a checkpoint to continue and the settings of ``run_args.json``: only the
    flags of ``may_change`` may differ. A folder without ``run_args.json`` (written by an older script) is resumed
    unchecked, with a note.

    Args:
        out_dir: The run's folder (``--out-dir``).
        resume: Whether ``--resume`` was given.
        settings: This invocation's ``run_settings``.
        may_change: The flags a resume may change, named in the message.

    Raises:
        SystemExit: ``out_dir`` is (inside) a file; a fresh run into a folder with checkpoints; a resume with no
            checkpoint, an unreadable ``run_args.json``, or settings that differ from the run's (each flag named).

    Examples:
        >>> import tempfile
        >>> check_run_folder(tempfile.mkdtemp(), resume=False, settings={"lr": 0.001})  # a new run: fine
        >>> check_run_folder(tempfile.mkdtemp(), resume=True, settings={"lr": 0.001})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        SystemExit: error: --resume: there is nothing to resume in ... (no checkpoint in ...): drop --resume ...
    """
    out = Path(out_dir)
    existing = next((folder for folder in (out, *out.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == out else f" is inside {existing}, which"
        raise SystemExit(f"error: --out-dir {out_dir}{where} is a file, not a folder: give a folder path")
    checkpoints = out / "checkpoints"
    if not resume:
        if latest_checkpoint(checkpoints) is not None:
            raise SystemExit(
                f"error: --out-dir {out_dir} already holds the checkpoints of a run: continue it with --resume, "
                "or give another --out-dir"
            )
        return
    if latest_checkpoint(checkpoints) is None:
        raise SystemExit(
            f"error: --resume: there is nothing to resume in {out_dir} (no checkpoint in {checkpoints}): "
            "drop --resume to start a run there"
        )
    saved_file = out / RUN_ARGS
    if not saved_file.is_file():
        print(f"note: {out_dir} has no {RUN_ARGS} (a run of an older script): its settings are not checked")
        return
    try:
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise SystemExit(f"error: --resume: {saved_file} is not readable JSON ({error})") from None
    if not isinstance(saved, dict):
        raise SystemExit(f"error: --resume: {saved_file} holds a {type(saved).__name__}, not the run's settings")
    changes = settings_changes(saved, settings)
    if changes:
        allowed = ", ".join(f"--{name.replace('_', '-')}" for name in may_change if name not in ("out_dir", "resume"))
        raise SystemExit(
            f"error: --resume continues the run in {out_dir} with its settings ({saved_file}), but these flags "
            f"differ: {'; '.join(changes)}: give the run's values, or another --out-dir for a new run (a resume may "
            f"change only {allowed})"
        )


def save_run_settings(out_dir: str | Path, settings: dict[str, Any]) -> Path:
    """Write ``settings`` to ``<out_dir>/run_args.json``, atomically, when a fresh run starts.

    Returns:
        The file written.
    """
    return write_record(Path(out_dir) / RUN_ARGS, settings)
