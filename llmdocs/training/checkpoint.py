"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, committed atomically.

A checkpoint is a folder `step_00000100/` holding

* `tensors.safetensors`: model weights (`model/...`) and optimizer state tensors (`optimizer/...`);
* `state.json`: the step, the optimizer's hyper-parameters, the scheduler state, the RNG states (as lists),
  the training config, the data position and anything else passed as `extra`, plus the SHA-256 of the
  tensor file.

Both files are written into a hidden temporary folder, flushed and `fsync`ed, and only then renamed to
`step_XXXXXXXX` with `os.replace` (a rename is atomic on POSIX file systems). A crash at any moment leaves
either the complete new checkpoint or none: [`latest_checkpoint`][llmdocs.training.checkpoint.latest_checkpoint]
only considers complete `step_*` folders, so a half-written one is never picked.

Nothing here calls `torch.load` or `pickle`: loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from llmdocs.training.distributed import unwrap_model
from llmdocs.training.seed import rng_state, set_rng_state

__all__ = ["checkpoint_info", "latest_checkpoint", "list_checkpoints", "load_checkpoint", "save_checkpoint"]

FORMAT = "llmdocs-checkpoint/1"
TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    *,
    config: Any = None,
    save_rng: bool = True,
    keep: int | None = None,
) -> Path:
    """Write `directory/step_{step:08d}/` atomically and return its path.

    Args:
        directory: Parent folder of all checkpoints of a run (created if needed).
        model: The model (a DDP wrapper is unwrapped, so keys never start with `module.`). Tied weights
            are stored once.
        optimizer: Optional optimizer; its state tensors go to safetensors, its hyper-parameters to JSON.
        scheduler: Optional learning-rate scheduler (its `state_dict()` must be JSON-friendly, as
            `LambdaLR`'s is).
        step: Optimizer steps taken so far.
        extra: JSON-friendly values (tensors allowed) such as the data position or the history.
        config: A dataclass or dict stored as JSON (e.g. the `TrainConfig`).
        save_rng: Store the Python/NumPy/torch RNG states, needed for an exact resume.
        keep: If given, delete all but the `keep` newest complete checkpoints afterwards.

    Returns:
        The checkpoint folder.

    Raises:
        ValueError: If `step` is negative or `keep` is smaller than 1.

    Examples:
        >>> import tempfile
        >>> model = torch.nn.Linear(2, 2)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_checkpoint(tmp, model, step=3, extra={"data_position": 3})
        ...     info = load_checkpoint(tmp, torch.nn.Linear(2, 2))
        >>> path.name, info["step"], info["extra"]
        ('step_00000003', 3, {'data_position': 3})
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be None or >= 1, got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    weights, aliases = _dedupe(unwrap_model(model).state_dict())
    for name, tensor in weights.items():
        tensors[f"model/{name}"] = tensor
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    state: dict[str, Any] = {
        "format": FORMAT,
        "step": step,
        "torch_version": torch.__version__,
        "model_aliases": aliases,
        "optimizer": _encode(optimizer.state_dict(), "optimizer", tensors) if optimizer else None,
        "scheduler": _encode(scheduler.state_dict(), "scheduler", tensors) if scheduler else None,
        "rng": rng_state() if save_rng else None,
        "config": _encode(config, "config", tensors),
        "extra": _encode(extra or {}, "extra", tensors),
    }
    payload = save_safetensors(tensors)
    state["tensors_sha256"] = hashlib.sha256(payload).hexdigest()

    final = directory / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=directory))
    old: Path | None = None
    try:
        _write_bytes(tmp / TENSORS_FILE, payload)
        _write_bytes(tmp / STATE_FILE, json.dumps(state, indent=1).encode())
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step: move the old copy aside first
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=directory))
            os.replace(final, old / final.name)
        os.replace(tmp, final)  # the commit point
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if keep is not None:
        for stale in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into the given objects, in place, without pickle.

    Args:
        path: A `step_*` folder, or a run's checkpoint folder (its newest complete checkpoint is used).
        model: Model to fill (strict: every key must match). A DDP wrapper is unwrapped.
        optimizer: Optimizer to restore (built over the same parameters, in the same order).
        scheduler: Scheduler to restore.
        restore_rng: Restore the global RNG states saved with the checkpoint.

    Returns:
        A dict with `"step"`, `"extra"`, `"config"` (as saved) and `"path"` (the folder read).

    Raises:
        FileNotFoundError: If there is no complete checkpoint at `path`.
        ValueError: If the tensor file does not match the checksum recorded in `state.json`, or the checkpoint
            was written by a different model (its weights' names or shapes differ from `model`'s; the model is
            left untouched).
    """
    folder, state = _read_state(path)
    payload = (folder / TENSORS_FILE).read_bytes()
    if hashlib.sha256(payload).hexdigest() != state["tensors_sha256"]:
        raise ValueError(f"{folder / TENSORS_FILE} is corrupt: its SHA-256 does not match state.json")
    tensors = load_safetensors(payload)
    if model is not None:
        weights = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
        for alias, name in state["model_aliases"].items():
            weights[alias] = weights[name]
        target = unwrap_model(model)
        mismatch = _model_mismatch(target.state_dict(), weights)
        if mismatch:  # checked first: load_state_dict would copy the matching weights before it raises
            raise ValueError(f"the checkpoint at {folder} was written by a different model: {mismatch}")
        try:
            target.load_state_dict(weights, strict=True)
        except RuntimeError as err:
            raise ValueError(f"the checkpoint at {folder} does not fit the model: {err}") from err
    if optimizer is not None:
        if state["optimizer"] is None:
            raise ValueError(f"{folder} holds no optimizer state")
        optimizer.load_state_dict(_decode(state["optimizer"], tensors))
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"{folder} holds no scheduler state")
        scheduler.load_state_dict(_decode(state["scheduler"], tensors))
    if restore_rng and state["rng"] is not None:
        set_rng_state(state["rng"])
    return {
        "step": state["step"],
        "extra": _decode(state["extra"], tensors),
        "config": _decode(state["config"], tensors),
        "path": folder,
    }


def checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The step and config of a checkpoint, read from its `state.json` alone (no tensor is loaded).

    Args:
        path: A `step_*` folder, or a run's checkpoint folder (its newest complete checkpoint is used).

    Returns:
        A dict with `"step"`, `"config"` (as saved; tensors in it stay `{"__tensor__": name}` references) and
        `"path"` (the folder read).

    Raises:
        FileNotFoundError: If there is no complete checkpoint at `path`.
        ValueError: If `state.json` is not an llmdocs checkpoint's.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = save_checkpoint(tmp, torch.nn.Linear(2, 2), step=5, config={"steps": 10})
        ...     info = checkpoint_info(tmp)
        >>> info["step"], info["config"], info["path"].name
        (5, {'steps': 10}, 'step_00000005')
    """
    folder, state = _read_state(path)
    return {"step": state["step"], "config": _decode(state["config"], None), "path": folder}


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints under `directory`, oldest first (temporary or partial folders are ignored).

    Args:
        directory: A run's checkpoint folder.

    Returns:
        The `step_*` folders that hold both files, sorted by step.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_FILE).is_file() and (child / TENSORS_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [child for _, child in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under `directory`, or `None`.

    Args:
        directory: A run's checkpoint folder.

    Returns:
        The folder of the highest step, or `None` when there is none.
    """
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _read_state(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder `path` names (itself, or its newest complete `step_*`) and its parsed state.json."""
    folder = Path(path)
    if not (folder / STATE_FILE).is_file():
        latest = latest_checkpoint(folder)
        if latest is None:
            raise FileNotFoundError(f"no complete checkpoint (step_*/{STATE_FILE}) under {folder}")
        folder = latest
    state = json.loads((folder / STATE_FILE).read_text())
    if state.get("format") != FORMAT:
        raise ValueError(f"{folder} is not an llmdocs checkpoint (format {state.get('format')!r})")
    return folder, state


def _model_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """What separates a checkpoint's weights (`found`) from a model's state dict (`expected`): '' if nothing."""
    missing = [name for name in expected if name not in found]
    unexpected = sorted(name for name in found if name not in expected)
    resized = [
        f"{name} {tuple(found[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    parts = []
    for label, names in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("other shapes, checkpoint vs model", resized),
    ):
        if names:
            first = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{label} ({len(names)}): {first}")
    return "; ".join(parts)


def _dedupe(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store tied tensors (same memory) once; return the unique tensors and alias -> kept name."""
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, tensor in state_dict.items():
        key = (tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())
        if tensor.numel() > 0 and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = tensor.detach().to("cpu", copy=True).contiguous()  # never shares memory
    return unique, aliases


def _encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-friendly copy of `obj`; tensors move to `tensors` and leave a `{"__tensor__": key}`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _encode(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint (not JSON)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor] | None) -> Any:
    """Inverse of `_encode`; with `tensors=None`, tensor references are left as they are."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return obj if tensors is None else tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _write_bytes(path: Path, data: bytes) -> None:
    """Write, flush and fsync one file, so its bytes are on disk before the rename that commits it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Persist a folder's entries (new files, renames); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
