"""BPE training: the incremental trainer equals a naive one, every merge is the most frequent pair at its time."""

from __future__ import annotations

import importlib.util
import random
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from llmdocs.tokenizers import BPETokenizer, MergeStep, merge_pair, pair_counts, train_bpe


def naive_train_bpe(word_counts: dict[bytes, int], vocab_size: int, min_frequency: int = 2) -> list[MergeStep]:
    """The textbook trainer: recount every pair of the corpus before each merge. Same tie-break and id rule."""
    words = [(list(word), count) for word, count in word_counts.items()]
    vocab = {i: bytes([i]) for i in range(256)}
    id_of = {token: i for i, token in vocab.items()}
    steps = []
    while len(vocab) < vocab_size:
        counts: dict[tuple[int, int], int] = {}
        for word, count in words:
            pair_counts(word, counts, count)
        if not counts:
            break
        pair, count = min(counts.items(), key=lambda item: (-item[1], item[0]))  # most frequent, then smallest
        if count < min_frequency:
            break
        new_bytes = vocab[pair[0]] + vocab[pair[1]]
        new_id = id_of.setdefault(new_bytes, len(vocab))
        vocab[new_id] = new_bytes
        steps.append(MergeStep(pair, new_id, count))
        words = [(merge_pair(word, pair, new_id), count) for word, count in words]
    return steps


def random_corpus(rng: random.Random, alphabet: str, n_words: int) -> dict[bytes, int]:
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(n_words)]
    return dict(Counter(w.encode("utf-8") for w in words))


def test_pair_counts_and_merge_docstring_examples() -> None:
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge_pair([5, 5, 5, 5], (5, 5), 6) == [6, 6]  # overlapping occurrences merge from the left
    assert merge_pair([], (1, 2), 3) == [] and merge_pair([1], (1, 2), 3) == [1]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("alphabet", ["ab", "abc d", "aab\u00e9\u4e2d"])
def test_incremental_trainer_equals_naive_trainer(seed: int, alphabet: str) -> None:
    rng = random.Random(seed)
    corpus = random_corpus(rng, alphabet, n_words=rng.randint(5, 300))
    vocab_size = 256 + rng.randint(1, 60)
    min_frequency = rng.choice([1, 2, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast, vocab = train_bpe(corpus, vocab_size, min_frequency)
    assert fast == naive_train_bpe(corpus, vocab_size, min_frequency)
    assert len(set(vocab.values())) == len(vocab)  # every token is a distinct byte string
    assert len(vocab) <= vocab_size
    assert len(caught) == (len(vocab) < vocab_size)  # a warning exactly when training stopped short


@pytest.mark.parametrize("seed", range(5))
def test_each_merge_is_the_most_frequent_pair_at_its_time(seed: int) -> None:
    rng = random.Random(100 + seed)
    corpus = random_corpus(rng, "the cat sat on a mat", n_words=400)
    steps, vocab = train_bpe(corpus, 256 + 80, min_frequency=1)
    words = [(list(w), c) for w, c in corpus.items()]
    for step in steps:
        counts: dict[tuple[int, int], int] = {}
        for word, count in words:
            pair_counts(word, counts, count)
        assert counts[step.pair] == step.count == max(counts.values())
        assert vocab[step.new_id] == vocab[step.pair[0]] + vocab[step.pair[1]]
        words = [(merge_pair(w, step.pair, step.new_id), c) for w, c in words]


def test_training_stops_when_no_pair_is_frequent_enough() -> None:
    with pytest.warns(UserWarning, match="learnt 0 merges of the 44 that vocab_size=300 asks for"):
        steps, vocab = train_bpe({b"ab": 1, b"cd": 1}, vocab_size=300, min_frequency=2)
    assert steps == [] and len(vocab) == 256
    with pytest.warns(UserWarning, match="learnt 2 merges of the 44 .* at least min_frequency=1 times"):
        steps, vocab = train_bpe({b"ab": 1, b"cd": 1}, vocab_size=300, min_frequency=1)
    assert [vocab[s.new_id] for s in steps] == [b"ab", b"cd"]  # then nothing is left to merge


def test_trainer_errors() -> None:
    with pytest.raises(ValueError, match="smaller than the 256 byte tokens"):
        train_bpe({b"ab": 1}, vocab_size=255)
    with pytest.raises(ValueError, match="min_frequency=0"):
        train_bpe({b"ab": 1}, vocab_size=300, min_frequency=0)
    with pytest.raises(TypeError, match="words must be bytes"):
        train_bpe({"ab": 1}, vocab_size=300)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no room"):
        BPETokenizer.train("abc", vocab_size=256, special_tokens=["<|endoftext|>"])
    with pytest.raises(TypeError, match="training text must be str"):
        BPETokenizer.train([b"abc"], vocab_size=260)  # type: ignore[list-item]


def test_tokenizer_training_skips_special_tokens_and_gives_them_the_last_ids() -> None:
    text = "hello world<|endoftext|>hello there<|endoftext|>" * 30
    with pytest.warns(UserWarning, match="that vocab_size=300 asks for"):
        tok = BPETokenizer.train(text, vocab_size=300, special_tokens=["<|endoftext|>"])
    # the corpus runs out of pairs before 300 tokens: the special token follows the last ordinary id
    assert tok.special_tokens == {"<|endoftext|>": len(tok.vocab)} and tok.vocab_size == len(tok.vocab) + 1
    assert not any(b"<|" in token or b"|>" in token for token in tok.vocab.values())  # never learnt its text
    # "hello" follows a special token, so it is a chunk without a space; " world" and " there" are words
    assert {b"hello", b" world", b" there"} <= set(tok.vocab.values())
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_training_on_a_real_text_matches_the_tokenizers_library_merges() -> None:
    """Same data, same pre-tokenization: the `tokenizers` trainer learns (almost) the same merges."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from llmdocs.data.shakespeare import load_shakespeare
    from llmdocs.tokenizers import token_str

    text = load_shakespeare(["hamlet"])[:50_000]
    ours = BPETokenizer.train(text, vocab_size=600)
    theirs = Tokenizer(models.BPE())
    theirs.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=600, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    theirs.train_from_iterator([text], trainer=trainer)
    ours_tokens = {token_str(t) for t in ours.vocab.values()}
    assert len(ours_tokens & set(theirs.get_vocab())) >= 0.98 * 600  # differences: ties broken differently


def test_benchmark_script_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "bpe_training.py"
    spec = importlib.util.spec_from_file_location("bpe_training_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    results = module.main(["--smoke"])
    assert results["ratio"] > 0 and results["shared_merges"] > 0.9 * (400 - 256)
    assert "ratio llmdocs / tokenizers" in capsys.readouterr().out


def test_truncated_tokenizer_equals_training_a_smaller_vocabulary() -> None:
    from llmdocs.data.shakespeare import load_shakespeare

    text = load_shakespeare(["macbeth"])[:30_000]
    big = BPETokenizer.train(text, vocab_size=700, special_tokens=["<|endoftext|>"])
    for vocab_size in (256 + 1, 300, 500):
        small = BPETokenizer.train(text, vocab_size=vocab_size, special_tokens=["<|endoftext|>"])
        cut = big.truncated(len(small.merges))
        assert cut.merges == small.merges and cut.vocab == small.vocab
        assert cut.encode_ordinary(text[:2000]) == small.encode_ordinary(text[:2000])
    with pytest.raises(ValueError, match="outside"):
        big.truncated(len(big.merges) + 1)


def test_incremental_trainer_equals_naive_trainer_on_real_mixed_text() -> None:
    from llmdocs.data.people_daily import load_people_daily
    from llmdocs.data.shakespeare import load_shakespeare
    from llmdocs.tokenizers import pretokenize

    text = load_shakespeare(["the-tempest"])[:6000] + load_people_daily(max_lines=30)
    corpus = dict(Counter(word.encode("utf-8") for word in pretokenize(text)))
    fast, _ = train_bpe(corpus, vocab_size=256 + 150)
    assert fast == naive_train_bpe(corpus, vocab_size=256 + 150)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: train_bpe({}, vocab_size=300), ValueError, "the corpus is empty, so none of the 44 merges"),
        (lambda: train_bpe({b"ab": 0}, vocab_size=257), ValueError, "the corpus is empty"),
        (lambda: train_bpe({b"ab": -3}, vocab_size=300), ValueError, "the frequency of b'ab' is -3"),
        (lambda: train_bpe({b"ab": 1.5}, vocab_size=300), TypeError, "frequencies must be ints, got float"),
        (lambda: train_bpe({b"ab": 2}, vocab_size=300.0), TypeError, "vocab_size must be an int, got float"),
        (lambda: BPETokenizer.train("", vocab_size=300), ValueError, "the corpus is empty"),
        (lambda: BPETokenizer.train([], vocab_size=257), ValueError, "the corpus is empty"),
        (lambda: BPETokenizer.train("abab", vocab_size=300.0), TypeError, "vocab_size must be an int"),
        (lambda: BPETokenizer.train(b"abab", vocab_size=300), TypeError, r"got bytes \(decode bytes first\)"),
        (lambda: BPETokenizer.train(None, vocab_size=300), TypeError, "text must be a str or an iterable of str"),
        (lambda: BPETokenizer.train("ab", 300, special_tokens="<|x|>"), TypeError, "got the string '<|x|>'"),
        (lambda: BPETokenizer.train("ab", 300, special_tokens=[""]), ValueError, "contains the empty string"),
        (lambda: BPETokenizer.train("ab", 300, special_tokens=[1]), TypeError, "must hold strings, got int"),
    ],
)
def test_degenerate_training_input_raises(call, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_empty_corpus_is_fine_when_no_merge_is_asked_for() -> None:
    assert train_bpe({}, vocab_size=256) == ([], {i: bytes([i]) for i in range(256)})
    tok = BPETokenizer.train("", vocab_size=257, special_tokens=["<|endoftext|>"])
    assert tok.merges == [] and tok.special_tokens == {"<|endoftext|>": 256}


@pytest.mark.parametrize(
    ("word_counts", "message"),
    [
        ("a", r"word_counts must be a mapping of word bytes to frequencies .* got str 'a'; to train on text, call"),
        (b"ab", "word_counts must be a mapping .* got bytes"),
        (7, "word_counts must be a mapping .* got int"),
        ([b"ab", b"cd"], r"\(word, frequency\) pairs; an item is bytes b'ab'"),
        ([(b"ab", 2, 1)], r"an item is tuple \(b'ab', 2, 1\)"),
    ],
)
def test_train_bpe_names_the_table_it_expects(word_counts: object, message: str) -> None:
    # a string used to fail with a bare "not enough values to unpack"
    with pytest.raises(TypeError, match=message):
        train_bpe(word_counts, 300)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="min_frequency must be an int, got str"):
        train_bpe({b"ab": 2}, 300, min_frequency="2")  # type: ignore[arg-type]
    assert train_bpe([(b"abab", 2)], 257)[1][256] == b"ab"  # (word, frequency) pairs are a table too


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (lambda: BPETokenizer.train("a", 257), "learnt 0 merges of the 1 that vocab_size=257 asks for"),
        (lambda: BPETokenizer.train(["ab"], 260), "learnt 0 merges of the 4 that vocab_size=260 asks for"),
        (lambda: BPETokenizer.train("ab ab", 260, ["<s>"]), "learnt 1 merge of the 3 .* stopped at 258 tokens"),
        (lambda: train_bpe({b"a": 5}, 257), "learnt 0 merges of the 1 .* at least min_frequency=2 times"),
        (lambda: train_bpe({b"ab": 3}, 258, min_frequency=4), "learnt 0 merges of the 2 .* min_frequency=4"),
    ],
)
def test_training_that_stops_short_of_vocab_size_warns(train, message: str) -> None:  # type: ignore[no-untyped-def]
    # stopping early is right (the `tokenizers` library does it silently); the warning says by how much
    with pytest.warns(UserWarning, match=message) as caught:
        train()
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller, not at llmdocs


def test_training_that_reaches_vocab_size_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BPETokenizer.train("ab ab", 257).vocab_size == 257
        assert len(train_bpe({b"abc": 2}, 258)[1]) == 258
        assert BPETokenizer.train("a", 256).vocab_size == 256  # no merge asked for, none missing
