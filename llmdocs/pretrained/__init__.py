"""Small models trained by the course's own example scripts, shipped inside the package.

No model is downloaded at run time: the chapters and labs load these. Each folder holds ``model.safetensors``,
``config.json`` and ``meta.json`` (the vocabularies, the scores measured when it was trained and the exact
command that trained it), written by :func:`llmdocs.serialization.save_pretrained`.

- ``dates-en-zh``: English dates -> Chinese (the Transformer chapter), trained by
  ``python examples/train_dates.py --export llmdocs/pretrained/dates-en-zh``.
- ``gpt-shakespeare-char``: a character-level GPT of Shakespeare's plays (the GPT chapter), trained by
  ``examples/train_gpt.py`` (its ``meta.json`` holds the exact command and the validation loss).
- ``gpt-tang-char``: a character-level GPT of seven-character Tang regulated verse (the GPT chapter), trained by
  ``python examples/train_gpt.py --preset tang``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmdocs.data.vocab import CharVocab
from llmdocs.models.gpt import GPT
from llmdocs.models.transformer import Transformer
from llmdocs.serialization import Tokenizer, load_language_model, load_pretrained

__all__ = ["available", "load_date_translator", "load_gpt", "pretrained_dir"]

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
        >>> from llmdocs.generation.encoder_decoder import greedy_decode
        >>> model, src_vocab, tgt_vocab, meta = load_date_translator()
        >>> src = src_vocab.encode_batch(["Sunday, March 3, 2024"])  # (1, S)
        >>> tgt_vocab.decode(greedy_decode(model, src, tgt_vocab.bos_id, tgt_vocab.eos_id)[0])
        '2024年3月3日星期日'
    """
    model, _, meta = load_pretrained(pretrained_dir(name))
    if not isinstance(model, Transformer):
        raise TypeError(f"{name} is a {type(model).__name__}, not an encoder-decoder Transformer")
    return model, CharVocab.from_dict(meta["src_vocab"]), CharVocab.from_dict(meta["tgt_vocab"]), meta


def load_gpt(name: str = "gpt-shakespeare-char") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """A shipped GPT language model and its tokenizer, trained by ``examples/train_gpt.py``.

    Args:
        name: Which shipped language model: ``"gpt-shakespeare-char"`` or ``"gpt-tang-char"``.

    Returns:
        ``(model, tokenizer, meta)``; the model is in eval mode on the CPU, ``meta["results"]`` holds the
        validation loss, the samples and the command of its training run.

    Examples:
        >>> from llmdocs.generation.decoder_only import generate
        >>> import torch
        >>> model, tokenizer, meta = load_gpt()
        >>> prompt = torch.tensor([tokenizer.encode("ROMEO:\\n")])  # (1, 7)
        >>> text = tokenizer.decode(generate(model, prompt, 40, temperature=0.8, top_k=20, seed=0)[0])
        >>> len(text), meta["results"]["corpus"]
        (40, 'shakespeare')
    """
    model, tokenizer, meta = load_language_model(pretrained_dir(name))
    if not isinstance(model, GPT):
        raise TypeError(f"{name} is a {type(model).__name__}, not a GPT")
    return model, tokenizer, meta
