"""A fine-tuned model shipped as what fine-tuning changed: the trained parameters, applied on top of a named base.

Fine-tuning a 22.7 M-parameter encoder's last block and classifier changes 1.9 M parameters; the other 20.8 M are
the pretrained ones, already installed with the base model's package. Storing only the trained tensors keeps a
shipped classifier small (7.6 MB instead of 91 MB), and says exactly which weights the task needed: the same idea
that LoRA takes further (a later chapter), where the shipped part is a low-rank adapter.

A *delta* folder holds `finetuned.safetensors` (the tensors whose parameters had `requires_grad=True` when it was
saved), `finetuned.json` (the base's name, the model class, every tensor's name and shape) and `meta.json` (scores,
the command that trained it). Loading builds the base model as usual and overwrites those tensors; the names and
shapes must match exactly, so a delta cannot be applied to the wrong architecture silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from llmdocs.serialization import write_folder_atomically

__all__ = ["load_finetuned", "save_finetuned"]

WEIGHTS, INDEX, META = "finetuned.safetensors", "finetuned.json", "meta.json"


def save_finetuned(
    directory: str | os.PathLike[str], model: nn.Module, base: str, meta: dict[str, Any] | None = None
) -> Path:
    """Write the trainable parameters of ``model`` (those fine-tuning changed) as a delta on the model ``base``.

    Args:
        directory: Target folder (replaced atomically).
        model: The fine-tuned model; its parameters with ``requires_grad=True`` are saved, the frozen ones are
            taken to be the base's.
        base: Name of the base model the delta applies to, e.g. ``"all-MiniLM-L6-v2"``.
        meta: Extra JSON-friendly data (scores, labels, training command).

    Returns:
        The folder written.

    Raises:
        ValueError: If ``model`` has no trainable parameter, or ``base`` is empty.

    Examples:
        >>> import tempfile
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> model[0].requires_grad_(False)  # the "pretrained" layer stays as it is
        Linear(in_features=4, out_features=4, bias=True)
        >>> path = save_finetuned(tempfile.mkdtemp() + "/delta", model, base="toy")
        >>> sorted(json.loads((path / "finetuned.json").read_text())["parameters"])
        ['1.bias', '1.weight']
    """
    if not isinstance(base, str) or not base:
        raise ValueError(f"base must name the base model, got {base!r}")
    state = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    if not state:
        raise ValueError("model has no trainable parameter: nothing was fine-tuned (requires_grad is False everywhere)")
    n_all = sum(p.numel() for p in model.parameters())
    n_saved = sum(t.numel() for t in state.values())
    index = {
        "base": base,
        "model": type(model).__name__,
        "parameters": {name: list(t.shape) for name, t in state.items()},
        "n_parameters": n_saved,
        "fraction_of_model": n_saved / n_all,
    }

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / INDEX).write_text(json.dumps(index, indent=2), encoding="utf-8")
        (tmp / META).write_text(json.dumps(meta or {}, indent=2, ensure_ascii=False), encoding="utf-8")

    return write_folder_atomically(directory, write)


def load_finetuned(directory: str | os.PathLike[str], model: nn.Module, base: str | None = None) -> dict[str, Any]:
    """Apply a delta written by [`save_finetuned`][llmdocs.finetuning.deltas.save_finetuned] to ``model``, in place.

    Args:
        directory: The delta folder.
        model: The base model, built with the base's weights (and the same architecture as when saved).
        base: If given, the base name the delta must have been saved for.

    Returns:
        The delta's ``meta.json``, with its ``finetuned.json`` under ``"delta"``.

    Raises:
        FileNotFoundError: If the folder lacks one of its files.
        ValueError: If the delta was saved for another base or model class, names a parameter ``model`` does
            not have, or a tensor's shape differs.

    Examples:
        >>> import tempfile
        >>> _ = torch.manual_seed(0)
        >>> tuned = nn.Linear(3, 2)
        >>> path = save_finetuned(tempfile.mkdtemp() + "/delta", tuned, base="toy")
        >>> fresh = nn.Linear(3, 2)
        >>> meta = load_finetuned(path, fresh, base="toy")
        >>> torch.equal(fresh.weight, tuned.weight), meta["delta"]["n_parameters"]
        (True, 8)
    """
    directory = Path(directory)
    for name in (WEIGHTS, INDEX):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} has no {name}: not a folder written by save_finetuned")
    index = json.loads((directory / INDEX).read_text(encoding="utf-8"))
    if base is not None and index.get("base") != base:
        raise ValueError(f"{directory} is a delta on {index.get('base')!r}, not on {base!r}")
    if index.get("model") != type(model).__name__:
        raise ValueError(f"{directory} was saved from a {index.get('model')}, not a {type(model).__name__}")
    state = load_file(str(directory / WEIGHTS))
    parameters = dict(model.named_parameters())
    unknown = sorted(set(state) - set(parameters))
    if unknown:
        raise ValueError(f"the delta has parameters that {type(model).__name__} lacks: {unknown[:5]}")
    for name, tensor in state.items():
        if parameters[name].shape != tensor.shape:
            raise ValueError(
                f"{name}: the delta's shape {tuple(tensor.shape)} differs from the model's "
                f"{tuple(parameters[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in state.items():
            parameters[name].copy_(tensor)
    meta_file = directory / META
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return {**meta, "delta": index}
