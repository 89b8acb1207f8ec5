"""Small models trained by the course's own example scripts, shipped inside the package.

No model is downloaded at run time: the chapters and labs load these. Each folder holds ``model.safetensors``,
``config.json`` and ``meta.json`` (the vocabularies, the scores measured when it was trained and the exact
command that trained it), written by :func:`llmdocs.serialization.save_pretrained`.

- ``dates-en-zh``: English dates -> Chinese (the Transformer chapter), trained by
  ``python examples/train_dates.py --export llmdocs/pretrained/dates-en-zh``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmdocs.data.vocab import CharVocab
from llmdocs.serialization import load_pretrained
from llmdocs.transformer import Transformer

__all__ = ["available", "load_date_translator", "pretrained_dir"]

_ROOT = Path(__file__).resolve().parent


def pretrained_dir(name: str) -> Path:
    """Folder of the shipped model ``name``.

    Args:
        name: One of :func:`available`.

    Returns:
        The folder.

    Examples:
        >>> pretrained_dir("dates-en-zh").name
        'dates-en-zh'
    """
    path = _ROOT / name
    if not (path / "config.json").is_file():
        raise ValueError(f"unknown pretrained model {name!r}; available: {available()}")
    return path


def available() -> list[str]:
    """Names of the shipped models.

    Examples:
        >>> "dates-en-zh" in available()
        True
    """
    return sorted(p.name for p in _ROOT.iterdir() if (p / "config.json").is_file())


def load_date_translator(name: str = "dates-en-zh") -> tuple[Transformer, CharVocab, CharVocab, dict[str, Any]]:
    """The date translator of the Transformer chapter, trained by ``examples/train_dates.py``.

    Args:
        name: Which shipped date model.

    Returns:
        ``(model, source_vocab, target_vocab, meta)``; the model is in eval mode on the CPU, ``meta["results"]``
        holds the scores and the command of its training run.

    Examples:
        >>> from llmdocs.decoding import greedy_decode
        >>> model, src_vocab, tgt_vocab, meta = load_date_translator()
        >>> src = src_vocab.encode_batch(["Sunday, March 3, 2024"])  # (1, S)
        >>> tgt_vocab.decode(greedy_decode(model, src, tgt_vocab.bos_id, tgt_vocab.eos_id)[0])
        '2024年3月3日星期日'
    """
    model, _, meta = load_pretrained(pretrained_dir(name))
    if not isinstance(model, Transformer):
        raise TypeError(f"{name} is a {type(model).__name__}, not an encoder-decoder Transformer")
    return model, CharVocab.from_dict(meta["src_vocab"]), CharVocab.from_dict(meta["tgt_vocab"]), meta
