"""A small on-disk cache of processed tensors (safetensors), keyed by a hash of the inputs.

Tokenising a corpus takes seconds to minutes; chapters and tests call the same preprocessing again and
again. `cached_tensors(name, key, build)` runs `build()` once, stores its tensors under the cache folder
and afterwards loads them. The file name contains a SHA-256 of `key` (everything the result depends on:
data file, tokenizer settings, seed ...) and of the llmdocs version, so a change in any input gives a new
entry instead of a stale one.

The folder is `$LLMDOCS_CACHE` if set, else `$XDG_CACHE_HOME/llmdocs`, else `~/.cache/llmdocs`. Deleting it is
always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["cache_dir", "cache_key", "cached_tensors"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def cache_dir() -> Path:
    """The cache folder: `$LLMDOCS_CACHE`, else `$XDG_CACHE_HOME/llmdocs`, else `~/.cache/llmdocs` (not created here).

    Examples:
        >>> isinstance(cache_dir(), Path)
        True
    """
    env = os.environ.get("LLMDOCS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")  # the XDG base-directory rule for user caches
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmdocs"


def cache_key(key: Any) -> str:
    """SHA-256 hex digest of a JSON-friendly value (dict keys sorted, so order does not matter).

    Args:
        key: Strings, numbers, lists and dicts describing the inputs.

    Returns:
        64 hex characters.

    Raises:
        TypeError: If `key` is not JSON-serialisable.

    Examples:
        >>> cache_key({"a": 1, "b": [2, 3]}) == cache_key({"b": [2, 3], "a": 1})
        True
        >>> len(cache_key("x"))
        64
    """
    from llmdocs import __version__

    text = json.dumps({"llmdocs": __version__, "key": key}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def cached_tensors(
    name: str,
    key: Any,
    build: Callable[[], dict[str, torch.Tensor]],
    directory: str | os.PathLike[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Return `build()`'s tensors, computing them only if the cache has no entry for `(name, key)`.

    The entry is written atomically (temporary file + `os.replace`), so an interrupted write never leaves
    a broken entry behind.

    Args:
        name: A readable prefix of the file name (letters, digits, `_.-`).
        key: JSON-friendly description of every input of `build`.
        build: Computes the tensors (a dict of name -> tensor; CPU copies are stored).
        directory: Cache folder; defaults to `cache_dir()`.

    Returns:
        The tensors (loaded from the cache, or just built).

    Raises:
        ValueError: If `name` has characters outside `[A-Za-z0-9_.-]`.

    Examples:
        >>> import tempfile
        >>> calls = []
        >>> def build():
        ...     calls.append(1)
        ...     return {"x": torch.arange(3)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     a = cached_tensors("demo", {"n": 3}, build, directory=tmp)
        ...     b = cached_tensors("demo", {"n": 3}, build, directory=tmp)
        >>> len(calls), torch.equal(a["x"], b["x"])
        (1, True)
    """
    if not _NAME.match(name):
        raise ValueError(f"name must match [A-Za-z0-9_.-]+, got {name!r}")
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{name}-{cache_key(key)[:16]}.safetensors"
    if path.is_file():
        return load_file(path)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in build().items()}
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tensors
