"""A BPE tokenizer on disk, in GPT-2's file formats: `vocab.json`, `merges.txt` and a small config.

- `vocab.json` maps each token to its id. Tokens are byte strings, written with GPT-2's printable byte characters
  (`Ġthe` is `b" the"`, see `llmdocs.tokenizers.byte_unicode`); special tokens are written as themselves.
- `merges.txt` has a `#version` line, then one merge per line, `left right`, in rank order (the order they were
  learnt). The merged token is `left + right`, so its id comes from `vocab.json`.
- `tokenizer_config.json` (ours, not GPT-2's) records the pre-tokenization pattern and which entries of
  `vocab.json` are special tokens.

These are the files of GPT-2 itself (and of Hugging Face's `GPT2Tokenizer`), so a tokenizer read from GPT-2's own
`vocab.json` and `merges.txt` encodes exactly like GPT-2. [BPETokenizer][llmdocs.tokenizers.bpe.BPETokenizer]
reads and writes them through `from_gpt2_files`, `save` and `load`.

References:
    openai/gpt-2 `src/encoder.py` (`get_encoder` reads `encoder.json` and `vocab.bpe`, the same two files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

from llmdocs.tokenizers.bpe_training import Pair
from llmdocs.tokenizers.byte_unicode import token_bytes, token_str
from llmdocs.tokenizers.special_tokens import ENDOFTEXT

__all__ = ["read_gpt2_files", "read_tokenizer_config", "write_tokenizer_files"]

CONFIG_FILE = "tokenizer_config.json"
"""The file that records the pattern and the special tokens next to `vocab.json` and `merges.txt`."""


def read_gpt2_files(
    vocab_json: str | PathLike[str],
    merges_txt: str | PathLike[str],
    special_tokens: Sequence[str] = (ENDOFTEXT,),
) -> tuple[dict[int, bytes], list[tuple[Pair, int]], dict[str, int]]:
    """Read GPT-2-format files into the three tables of a BPE tokenizer.

    Args:
        vocab_json: Path of `vocab.json` (token -> id).
        merges_txt: Path of `merges.txt`.
        special_tokens: Entries of `vocab.json` that are special tokens, not byte strings.

    Returns:
        `(vocab, merges, special_tokens)`: `id -> bytes` of the ordinary tokens, `((left_id, right_id), merged_id)`
        in rank order, and `text -> id` of the special tokens.

    Raises:
        ValueError: If a special token is not in `vocab.json`, or a line of `merges.txt` is not a merge of two
            tokens whose concatenation is a token.
        FileNotFoundError: If a file is missing.

    Examples:
        >>> from pathlib import Path
        >>> _ = Path("vocab.json").write_text(
        ...     '{"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}', encoding="utf-8"
        ... )
        >>> _ = Path("merges.txt").write_text("#version: 0.2\\na b\\n", encoding="utf-8")
        >>> read_gpt2_files("vocab.json", "merges.txt")
        ({0: b'a', 1: b'b', 2: b'ab'}, [((0, 1), 2)], {'<|endoftext|>': 3})
    """
    token_to_id: dict[str, int] = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
    missing = [s for s in special_tokens if s not in token_to_id]
    if missing:
        raise ValueError(f"special tokens {missing} are not in {vocab_json}")
    specials = {s: token_to_id[s] for s in special_tokens}
    vocab = {i: token_bytes(token) for token, i in token_to_id.items() if token not in specials}
    merges: list[tuple[Pair, int]] = []
    for line_no, line in enumerate(Path(merges_txt).read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2 or any(p not in token_to_id for p in [*parts, "".join(parts)]):
            raise ValueError(f"{merges_txt}:{line_no}: {line!r} is not a merge of two tokens of {vocab_json}")
        left, right = parts
        merges.append(((token_to_id[left], token_to_id[right]), token_to_id[left + right]))
    return vocab, merges, specials


def write_tokenizer_files(
    directory: str | PathLike[str],
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[Pair, int]],
    special_tokens: Mapping[str, int],
    pattern: str,
) -> Path:
    """Write `vocab.json`, `merges.txt` (GPT-2's formats) and `tokenizer_config.json` to `directory`.

    Args:
        directory: Created if needed.
        vocab: `id -> bytes` of the ordinary tokens.
        merges: `((left_id, right_id), merged_id)` in rank order.
        special_tokens: `text -> id` of the special tokens.
        pattern: The pre-tokenization regular expression.

    Returns:
        The directory.

    Examples:
        >>> vocab = {**{i: bytes([i]) for i in range(256)}, 256: b" t"}
        >>> folder = write_tokenizer_files("tok", vocab, [((32, 116), 256)], {"<|endoftext|>": 257}, r"\\S+")
        >>> sorted(p.name for p in folder.iterdir())
        ['merges.txt', 'tokenizer_config.json', 'vocab.json']
        >>> (folder / "merges.txt").read_text().splitlines()  # the space is written Ġ
        ['#version: 0.2', 'Ġ t']
        >>> read_tokenizer_config(folder)
        (['<|endoftext|>'], '\\\\S+')
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    token_to_id = {token_str(token): i for i, token in sorted(vocab.items())}
    token_to_id.update(special_tokens)
    (folder / "vocab.json").write_text(json.dumps(token_to_id, ensure_ascii=False, indent=0), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{token_str(vocab[a])} {token_str(vocab[b])}" for (a, b), _ in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {"pattern": pattern, "special_tokens": list(special_tokens)}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def read_tokenizer_config(directory: str | PathLike[str]) -> tuple[list[str], str]:
    """The special tokens and the pattern recorded by `write_tokenizer_files`.

    Args:
        directory: A folder written by `write_tokenizer_files`.

    Returns:
        `(special_tokens, pattern)`.

    Raises:
        FileNotFoundError: If `tokenizer_config.json` is missing.
        ValueError: If it lacks `special_tokens` or `pattern`.
    """
    path = Path(directory) / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or not {"special_tokens", "pattern"} <= set(config):
        raise ValueError(f"{path} must hold 'special_tokens' and 'pattern'")
    return list(config["special_tokens"]), str(config["pattern"])
