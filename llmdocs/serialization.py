"""Saving and loading a trained model: ``model.safetensors`` + ``config.json`` (+ ``meta.json``), atomically.

A *checkpoint* (``llmdocs.training.checkpoint``) holds everything needed to continue a run: optimizer state,
RNG states, the data position. An *exported model* holds only what is needed to use it: the weights, the model's
config dataclass, and metadata such as the vocabulary. It is what the chapters and labs load.

Nothing here unpickles: weights are safetensors, everything else JSON, and the config class is looked up in a
fixed table of llmdocs configs, never imported from a name stored in the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from llmdocs.gpt import GPT, GPTConfig
from llmdocs.transformer import Transformer, TransformerConfig

MODEL_CLASSES: dict[str, tuple[type, type[nn.Module]]] = {
    "Transformer": (TransformerConfig, Transformer),
    "GPT": (GPTConfig, GPT),
}
"""Model name -> (config dataclass, model class) of every model that :func:`load_pretrained` can build."""


def save_pretrained(
    directory: str | os.PathLike[str], model: nn.Module, config: Any, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``directory`` (replacing it atomically: a crash never leaves half a model).

    Args:
        directory: Target folder.
        model: One of the models in :data:`MODEL_CLASSES`.
        config: Its config dataclass.
        meta: Extra JSON-friendly data (vocabulary, training command, scores).

    Returns:
        The folder written.

    Examples:
        >>> import tempfile
        >>> cfg = TransformerConfig.tiny()
        >>> path = save_pretrained(tempfile.mkdtemp() + "/m", Transformer(cfg), cfg, {"note": "untrained"})
        >>> sorted(p.name for p in path.iterdir())
        ['config.json', 'meta.json', 'model.safetensors']
    """
    name = type(model).__name__
    if name not in MODEL_CLASSES or not isinstance(config, MODEL_CLASSES[name][0]):
        raise TypeError(f"model {name} with config {type(config).__name__} is not a known pair: {list(MODEL_CLASSES)}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"))  # stores tied weights once
        (tmp / "config.json").write_text(
            json.dumps({"model": name, "config": dataclasses.asdict(config)}, indent=2), encoding="utf-8"
        )
        (tmp / "meta.json").write_text(json.dumps(meta or {}, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes a private folder; a saved model is an ordinary, shareable one
        for file in tmp.iterdir():
            file.chmod(0o644)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_pretrained(directory: str | os.PathLike[str]) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Build the model saved in ``directory`` and load its weights (eval mode, CPU).

    Args:
        directory: A folder written by :func:`save_pretrained`.

    Returns:
        ``(model, config, meta)``.

    Examples:
        >>> import tempfile, torch
        >>> cfg = TransformerConfig.tiny()
        >>> model = Transformer(cfg)
        >>> path = save_pretrained(tempfile.mkdtemp() + "/m", model, cfg)
        >>> loaded, loaded_cfg, meta = load_pretrained(path)
        >>> loaded_cfg == cfg, all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
        (True, True)
    """
    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} has no config.json: not a folder written by save_pretrained")
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    if saved.get("model") not in MODEL_CLASSES:
        raise ValueError(f"{config_file}: unknown model {saved.get('model')!r}, expected one of {list(MODEL_CLASSES)}")
    config_cls, model_cls = MODEL_CLASSES[saved["model"]]
    config = config_cls(**saved["config"])
    model = model_cls(config)
    load_model(model, str(directory / "model.safetensors"))
    meta_file = directory / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return model.eval(), config, meta
