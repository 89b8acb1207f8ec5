"""Word2vec: the data pipeline, the two objectives, sparse learning steps, vectors and their file format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmdocs.testing import assert_close, assert_equivalent
from llmdocs.word2vec.data import (
    Vocabulary,
    context_windows,
    keep_probabilities,
    noise_distribution,
    subsample,
    tokenize_english,
)
from llmdocs.word2vec.model import (
    Word2Vec,
    Word2VecConfig,
    build_optimizer,
    full_softmax_loss,
    make_examples,
    negative_sampling_loss,
    sample_negatives,
    train_word2vec,
)
from llmdocs.word2vec.vectors import WordVectors, load_word2vec_format

torch.set_num_threads(1)


# ---------------------------------------------------------------- the test of learning


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])  # (B, C): context words, 0 = padding where masked
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    targets = torch.tensor([6, 7])
    negatives = torch.tensor([[8, 9, 10], [11, 8, 12]])  # (B, K)
    return inputs, mask, targets, negatives


def _model(objective: str) -> Word2Vec:
    torch.manual_seed(0)
    model = Word2Vec(Word2VecConfig(vocab_size=20, dim=8, objective=objective, negative=3))
    with torch.no_grad():  # word2vec starts the output vectors at 0, where the input gradient is 0: perturb them
        model.output_embeddings.weight.normal_(0, 0.3)
    return model


def _changed_rows(before: torch.Tensor, after: torch.Tensor) -> set[int]:
    return set(torch.nonzero((before != after).any(dim=1)).flatten().tolist())


@pytest.mark.parametrize("kind", ["sgd", "sparse_adam"])
@pytest.mark.parametrize("objective", ["negative", "softmax"])
def test_one_step_changes_exactly_the_touched_rows_and_lowers_the_loss(objective: str, kind: str) -> None:
    model = _model(objective)
    inputs, mask, targets, negatives = _batch()
    optimizer = build_optimizer(model, kind, lr=0.05)
    reduction = "sum" if kind == "sgd" else "mean"
    input_before = model.input_embeddings.weight.detach().clone()
    output_before = model.output_embeddings.weight.detach().clone()
    loss_before = model.loss(inputs, mask, targets, negatives, reduction)
    loss_before.backward()
    assert model.input_embeddings.weight.grad.is_sparse and model.output_embeddings.weight.grad.is_sparse
    optimizer.step()
    with torch.no_grad():
        loss_after = model.loss(inputs, mask, targets, negatives, reduction)

    assert _changed_rows(input_before, model.input_embeddings.weight.detach()) == {1, 2, 3, 4, 5}  # not row 0
    scored = {6, 7, 8, 9, 10, 11, 12} if objective == "negative" else set(range(20))
    assert _changed_rows(output_before, model.output_embeddings.weight.detach()) == scored
    assert loss_after < loss_before


def test_first_step_from_zero_output_vectors_moves_only_the_output_vectors() -> None:
    model = Word2Vec(Word2VecConfig(vocab_size=20, dim=8, negative=3))  # word2vec's initialisation
    inputs, mask, targets, negatives = _batch()
    before = model.input_embeddings.weight.detach().clone()
    optimizer = build_optimizer(model, "sgd")
    model.loss(inputs, mask, targets, negatives, "sum").backward()
    optimizer.step()
    assert torch.equal(before, model.input_embeddings.weight.detach())  # dL/dh = sum of (sigma - y) u = 0
    assert _changed_rows(torch.zeros(20, 8), model.output_embeddings.weight.detach()) == {6, 7, 8, 9, 10, 11, 12}


@pytest.mark.parametrize("architecture", ["cbow", "skipgram"])
def test_training_separates_two_topics(architecture: str) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    # words 0-4 only ever appear with each other, words 5-9 likewise
    sentences = [torch.randint(0, 5, (12,), generator=generator) + 5 * (i % 2) for i in range(300)]
    counts = torch.bincount(torch.cat(sentences), minlength=10)
    model = Word2Vec(Word2VecConfig(vocab_size=10, dim=8, architecture=architecture, negative=3))
    history = train_word2vec(
        model, sentences, torch.ones(10), noise_distribution(counts), window=2, epochs=10, batch_size=64
    )
    assert history[-1]["loss"] < history[0]["loss"]
    sim = F.normalize(model.vectors, dim=1) @ F.normalize(model.vectors, dim=1).T  # (V, V)
    same = torch.block_diag(torch.ones(5, 5), torch.ones(5, 5)).bool() & ~torch.eye(10, dtype=torch.bool)
    different = ~torch.block_diag(torch.ones(5, 5), torch.ones(5, 5)).bool()
    assert sim[same].mean() > 0.9 and sim[different].mean().abs() < 0.3


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["sgd", "sparse_adam"])
def test_resume_at_an_epoch_boundary_equals_an_unbroken_run(kind: str) -> None:
    sentences = [torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([5, 4, 3, 2, 1, 0, 1])]
    counts = torch.bincount(torch.cat(sentences))
    args = (sentences, keep_probabilities(counts, 0.1), noise_distribution(counts))
    settings = {"window": 2, "epochs": 3, "batch_size": 4}
    torch.manual_seed(0)
    unbroken = Word2Vec(Word2VecConfig(vocab_size=6, dim=4, negative=2))
    split = Word2Vec(Word2VecConfig(vocab_size=6, dim=4, negative=2))
    split.load_state_dict(unbroken.state_dict())
    history = train_word2vec(unbroken, *args, **settings, optimizer=build_optimizer(unbroken, kind))
    optimizer = build_optimizer(split, kind)
    train_word2vec(split, *args, **settings, optimizer=optimizer, stop_epoch=1)
    saved = optimizer.state_dict()  # what a checkpoint keeps
    optimizer = build_optimizer(split, kind)
    optimizer.load_state_dict(saved)
    resumed = train_word2vec(split, *args, **settings, optimizer=optimizer, start_epoch=1)
    assert [row["epoch"] for row in resumed] == [2, 3]
    assert resumed[-1]["loss"] == history[-1]["loss"]
    assert torch.equal(split.vectors, unbroken.vectors)


# ---------------------------------------------------------------- losses


def test_negative_sampling_loss_by_hand() -> None:
    hidden = torch.tensor([[1.0, 2.0]])
    target = torch.tensor([[0.5, 0.25]])  # h.u = 1
    noise = torch.tensor([[[1.0, 0.0], [0.0, -1.0]]])  # h.u = 1 and -2
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -math.log(sigmoid(1)) - math.log(sigmoid(-1)) - math.log(sigmoid(2))
    assert negative_sampling_loss(hidden, target, noise).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.numerics
def test_full_softmax_is_cross_entropy_over_the_vocabulary() -> None:
    torch.manual_seed(0)
    model = _model("softmax").double()  # an equivalence proof runs in float64
    inputs, mask, targets, _ = _batch()
    hidden = model.hidden(inputs, mask)  # (B, D)
    expected = F.cross_entropy(hidden @ model.output_embeddings.weight.T, targets)
    assert_equivalent(model.loss(inputs, mask, targets), expected)
    assert_equivalent(full_softmax_loss(hidden, model.output_embeddings.weight, targets).mean(), expected)


def test_hidden_is_the_mean_of_the_real_context_vectors() -> None:
    model = _model("negative")
    inputs, mask, _, _ = _batch()
    weight = model.input_embeddings.weight.detach()
    expected = torch.stack([weight[[1, 2, 3]].mean(0), weight[[4, 5]].mean(0)])
    assert_close(model.hidden(inputs, mask), expected)


def test_word2vec_update_gives_every_context_word_the_full_error() -> None:
    """word2vec.c / gensim (cbow_mean=1): neu1e is added to each context word, not neu1e / C."""
    inputs, mask, targets, negatives = _batch()
    grads = {}
    exact = _model("negative")
    for quirk in (False, True):
        model = Word2Vec(Word2VecConfig(vocab_size=20, dim=8, negative=3, word2vec_update=quirk))
        model.load_state_dict(exact.state_dict())  # the same weights
        hidden = model.hidden(inputs, mask)
        hidden.retain_grad()
        loss = negative_sampling_loss(hidden, model.output_embeddings(targets), model.output_embeddings(negatives))
        loss.sum().backward()
        grads[quirk] = (hidden.detach(), hidden.grad, model.input_embeddings.weight.grad.to_dense())
    assert_close(grads[True][0], grads[False][0])  # same forward value: the mean
    error = grads[True][1]  # (B, D) dLoss/dhidden, the same in both
    for word, row, count in [(1, 0, 3), (2, 0, 3), (3, 0, 3), (4, 1, 2), (5, 1, 2)]:
        assert_close(grads[True][2][word], error[row])  # the full error
        assert_close(grads[False][2][word], error[row] / count)  # the exact gradient of the mean


def test_negatives_follow_the_noise_distribution() -> None:
    noise = noise_distribution(torch.tensor([81, 16, 1]), exponent=0.75)
    assert_close(noise, torch.tensor([27.0, 8.0, 1.0], dtype=torch.float64) / 36)
    draws = sample_negatives(noise, (20_000, 5), torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 5)
    freq = torch.bincount(draws.flatten(), minlength=3).double() / draws.numel()
    torch.testing.assert_close(freq, noise, atol=0.01, rtol=0)  # not rounding: sampling, std <= 0.0016


# ---------------------------------------------------------------- data


def test_vocabulary_min_count_order_and_encoding() -> None:
    sentences = [["b", "a", "c", "a"], ["b", "a", "d"]]
    vocab = Vocabulary.build(sentences, min_count=2)
    assert vocab.words == ("a", "b") and vocab.counts.tolist() == [3, 2]
    assert "a" in vocab and "c" not in vocab and len(vocab) == 2
    assert [t.tolist() for t in vocab.encode(sentences)] == [[1, 0, 0], [1, 0]]
    assert Vocabulary.build(sentences, min_count=1).words == ("a", "b", "c", "d")  # ties alphabetical
    assert Vocabulary.build(sentences, min_count=1, max_size=3).words == ("a", "b", "c")


def test_keep_probabilities_follow_the_formula() -> None:
    counts = torch.tensor([5000, 300, 40, 2])
    t = 1e-2
    total = counts.sum().item()
    expected = [min(1.0, (math.sqrt(c / (t * total)) + 1) * (t * total) / c) for c in counts.tolist()]
    assert_close(keep_probabilities(counts, t), torch.tensor(expected, dtype=torch.float64))
    assert keep_probabilities(counts, 0).tolist() == [1.0] * 4
    ids = torch.zeros(50_000, dtype=torch.long)
    rate = subsample(ids, keep_probabilities(counts, t), torch.Generator().manual_seed(0)).numel() / 50_000
    assert rate == pytest.approx(expected[0], abs=0.01)


def test_keep_probabilities_match_gensim() -> None:
    gensim_models = pytest.importorskip("gensim.models")
    sentences = tokenize_english("the cat sat on the mat and the dog sat on the log\n" * 30 + "a rare word here\n")
    model = gensim_models.Word2Vec(vector_size=4, min_count=1, sample=1e-2, workers=1)
    model.build_vocab(sentences)
    vocab = Vocabulary.build(sentences, min_count=1)
    ours = keep_probabilities(vocab.counts, 1e-2)
    theirs = torch.tensor([model.wv.get_vecattr(w, "sample_int") / 2**32 for w in vocab.words], dtype=torch.float64)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)  # not rounding: gensim keeps uint32(p * 2**32)


def test_context_windows_stay_inside_sentences() -> None:
    sentences = [torch.tensor([1, 2, 3]), torch.tensor([4, 5])]
    centres, contexts, mask = context_windows(sentences, window=2, dynamic=False)
    assert centres.tolist() == [1, 2, 3, 4, 5] and contexts.shape == mask.shape == (5, 4)
    assert [sorted(c[m].tolist()) for c, m in zip(contexts, mask, strict=True)] == [[2, 3], [1, 3], [1, 2], [5], [4]]
    # a one-word sentence has no context: it gives no example
    assert context_windows([torch.tensor([9])], window=2)[0].numel() == 0


def test_dynamic_window_uses_offset_d_with_probability_w_minus_d_plus_1_over_w() -> None:
    W = 4
    _, _, mask = context_windows([torch.arange(60)] * 100, window=W, generator=torch.Generator().manual_seed(0))
    middle = mask.view(100, 60, 2 * W)[:, W:-W]  # positions with a full window on both sides
    observed = middle.float().mean(dim=(0, 1))  # (2W,) offsets -W..-1, 1..W
    expected = torch.tensor([(W - abs(d) + 1) / W for d in [*range(-W, 0), *range(1, W + 1)]])
    torch.testing.assert_close(observed, expected, atol=0.03, rtol=0)  # not rounding: sampling, std <= 0.007
    assert torch.equal(middle[..., :W].flip(-1), middle[..., W:])  # same b on both sides


def test_skipgram_examples_are_centre_context_pairs() -> None:
    inputs, mask, targets = make_examples([torch.tensor([1, 2, 3])], "skipgram", window=5)
    pairs = sorted(zip(inputs[:, 0].tolist(), targets.tolist(), strict=True))
    assert inputs.shape[1] == 1 and mask.all()
    assert {(1, 2), (2, 1), (2, 3), (3, 2)} <= set(pairs)  # b >= 1 always keeps the nearest neighbours


def test_tokenize_english() -> None:
    assert tokenize_english("O, she doth teach the torches to burn bright!") == [
        ["o", "she", "doth", "teach", "the", "torches", "to", "burn", "bright"]
    ]
    assert tokenize_english("I'll go.\nExit.", min_length=1) == [["i'll", "go"], ["exit"]]


def test_people_daily_words_rebuild_the_text() -> None:
    from llmdocs.data.people_daily import load_people_daily
    from llmdocs.word2vec.data import load_people_daily_words

    words = load_people_daily_words(max_lines=20)
    assert ["".join(s) for s in words] == load_people_daily(max_lines=20).splitlines()
    assert "中共中央" in words[1]


# ---------------------------------------------------------------- vectors


def _toy_vectors() -> WordVectors:
    words = ("king", "queen", "man", "woman", "apple")
    vectors = torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.9, 1.1, 0.1], [1.0, -1.2, 0.1], [0.0, 0.0, 1.0]])
    return WordVectors(words, vectors)


def test_nearest_and_analogy_exclude_the_query_words() -> None:
    wv = _toy_vectors()
    assert wv.nearest("king", 1)[0][0] == "man"
    assert "king" not in dict(wv.nearest("king", 4))
    assert wv.analogy("king", "man", "woman")[0][0] == "queen"
    assert not {"king", "man", "woman"} & set(dict(wv.analogy("king", "man", "woman", k=2)))
    assert wv.similarity("king", "man") == pytest.approx(F.cosine_similarity(wv.vectors[0], wv.vectors[2], 0).item())


def test_project_2d_is_pca() -> None:
    wv = _toy_vectors()
    coords = wv.project_2d(list(wv.words))
    assert coords.shape == (5, 2)
    assert_close(coords.mean(0), torch.zeros(2), scale=coords.abs().max())  # zero, to the rounding of coords
    assert coords[:, 0].var() >= coords[:, 1].var()  # the first axis carries the most variance


def test_save_and_load_round_trip(tmp_path) -> None:
    wv = _toy_vectors()
    path = wv.save_word2vec_format(tmp_path / "vectors.txt")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "5 3"
    again = load_word2vec_format(path)
    assert again.words == wv.words
    assert torch.equal(again.vectors, wv.vectors)  # 6 significant digits hold these short decimals exactly


def test_gensim_reads_our_file(tmp_path) -> None:
    keyed = pytest.importorskip("gensim.models").KeyedVectors
    wv = WordVectors(("意思", "king", "queen"), torch.randn(3, 4))
    loaded = keyed.load_word2vec_format(str(wv.save_word2vec_format(tmp_path / "v.txt")), binary=False)
    assert list(loaded.index_to_key) == list(wv.words)
    torch.testing.assert_close(torch.from_numpy(loaded.vectors), wv.vectors, atol=0, rtol=1e-5)  # not rounding: .6g


# ---------------------------------------------------------------- errors


def test_bad_input_gives_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="architecture"):
        Word2VecConfig(vocab_size=10, architecture="glove")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="objective"):
        Word2VecConfig(vocab_size=10, objective="hierarchical")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        Word2VecConfig(vocab_size=10, negative=0)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build([["a"]], min_count=0)
    with pytest.raises(ValueError, match="no word occurs"):
        Vocabulary.build([["a"]], min_count=2)
    with pytest.raises(TypeError, match="lists of words"):
        Vocabulary.build(["a sentence"])
    with pytest.raises(TypeError, match="str"):
        tokenize_english(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        context_windows([torch.tensor([1, 2])], window=0)
    with pytest.raises(ValueError, match="sample"):
        keep_probabilities(torch.tensor([1]), sample=-1)
    model = _model("negative")
    inputs, mask, targets, _ = _batch()
    with pytest.raises(ValueError, match="negatives"):
        model.loss(inputs, mask, targets)
    with pytest.raises(ValueError, match="same shape"):
        model.hidden(inputs, mask[:, :2])
    with pytest.raises(ValueError, match="at least one input word"):
        model.hidden(inputs, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="kind"):
        build_optimizer(model, "adamw")  # type: ignore[arg-type]
    wv = _toy_vectors()
    with pytest.raises(KeyError, match="not in the vocabulary"):
        wv.nearest("prince")
    with pytest.raises(TypeError, match="str"):
        wv.nearest(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        WordVectors(("a", "a"), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="spaces"):
        WordVectors(("new york",), torch.zeros(1, 3)).save_word2vec_format(tmp_path / "x.txt")
    (tmp_path / "bad.txt").write_text("two words\n", encoding="utf-8")
    with pytest.raises(ValueError, match="first line"):
        load_word2vec_format(tmp_path / "bad.txt")


def _corpus_tables(vocab_size: int = 4) -> tuple[Word2Vec, torch.Tensor, torch.Tensor]:
    counts = torch.ones(vocab_size, dtype=torch.long)
    model = Word2Vec(Word2VecConfig(vocab_size=vocab_size, dim=4, negative=2))
    return model, keep_probabilities(counts, sample=0), noise_distribution(counts)


@pytest.mark.parametrize(
    ("sentences", "error", "message"),
    [
        ([], ValueError, "sentences is empty"),  # used to fail inside torch.cat
        ([torch.tensor([0]), torch.tensor([1])], ValueError, "no sentence has 2 or more words"),  # was loss 0
        ([torch.tensor([], dtype=torch.long)], ValueError, "no sentence has 2 or more words"),
        ([["a", "b"]], TypeError, r"sentences\[0\] must be a tensor of word ids"),
        ([torch.tensor([0.0, 1.0])], TypeError, r"sentences\[0\] must be a 1-D tensor of integer word ids"),
        ([torch.tensor([0, 7])], ValueError, r"word ids must be in \[0, vocab_size=4\), got 0..7"),
        ("a b c", TypeError, "got a str"),
    ],
)
def test_train_word2vec_rejects_empty_and_degenerate_corpora(sentences: object, error: type, message: str) -> None:
    model, keep_prob, noise = _corpus_tables()
    with pytest.raises(error, match=message):
        train_word2vec(model, sentences, keep_prob, noise, epochs=1)  # type: ignore[arg-type]


def test_train_word2vec_checks_its_tables_and_reports_an_epoch_without_examples_as_nan() -> None:
    model, keep_prob, noise = _corpus_tables()
    sentences = [torch.tensor([0, 1, 2, 3])]
    with pytest.raises(ValueError, match=r"keep_prob must have shape \(V,\)=\(4,\), got \(3,\)"):
        train_word2vec(model, sentences, keep_prob[:3], noise, epochs=1)
    with pytest.raises(ValueError, match=r"noise must have shape"):
        train_word2vec(model, sentences, keep_prob, noise[None], epochs=1)
    dropped = train_word2vec(model, sentences, torch.zeros(4, dtype=torch.float64), noise, epochs=1)
    assert math.isnan(dropped[0]["loss"])  # subsampling kept no word: no loss to report, not 0.0


@pytest.mark.parametrize(
    ("noise", "message"),
    [  # each used to fail in torch.multinomial with "invalid multinomial distribution"
        (torch.zeros(4), "sum 0"),
        (torch.tensor([0.5, float("nan"), 0.25, 0.25]), "got min nan"),
        (torch.tensor([0.5, -0.5, 0.5, 0.5]), "got min -0.5"),
        (torch.tensor([0.5, float("inf"), 0.5, 0.5]), "max inf"),
    ],
)
def test_train_word2vec_rejects_a_noise_table_it_cannot_sample_from(noise: torch.Tensor, message: str) -> None:
    model, keep_prob, _ = _corpus_tables()
    with pytest.raises(ValueError, match=r"noise must be finite weights >= 0 with a positive sum .*" + message):
        train_word2vec(model, [torch.tensor([0, 1, 2, 3])], keep_prob, noise, epochs=1)


def test_the_full_softmax_ignores_the_noise_table() -> None:
    model = Word2Vec(Word2VecConfig(vocab_size=4, dim=4, objective="softmax"))
    history = train_word2vec(model, [torch.tensor([0, 1, 2, 3])], torch.ones(4), torch.zeros(4), epochs=1)
    assert len(history) == 1 and math.isfinite(history[0]["loss"])  # no noise words drawn: zeros are fine


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"keep_prob": [1.0] * 4}, TypeError, r"keep_prob must be a \(V,\) tensor .*got list"),  # AttributeError
        ({"noise": None}, TypeError, r"noise must be a \(V,\) tensor .*got NoneType"),
        ({"keep_prob": torch.full((4,), float("nan"))}, ValueError, r"keep_prob must be probabilities in \[0, 1\]"),
        ({"keep_prob": torch.full((4,), 2.0)}, ValueError, "keep_prob must be probabilities"),
        ({"batch_size": "8"}, TypeError, "batch_size must be an int >= 1, got str '8'"),  # used: '<' not supported
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
        ({"epochs": 2.0}, TypeError, "epochs must be an int >= 1, got float"),
        ({"window": True}, TypeError, "window must be an int >= 1, got bool"),
        ({"start_epoch": -1}, ValueError, "start_epoch must be an int >= 0, got -1"),  # used to run an "epoch 0"
        ({"start_epoch": 3}, ValueError, r"start_epoch=3 is past the run's last epoch \(epochs=1\)"),
        ({"stop_epoch": -1}, ValueError, "stop_epoch must be an int >= 0"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"on_batch": "print"}, TypeError, "on_batch must be a function"),
    ],
)
def test_train_word2vec_names_a_bad_argument(kwargs: dict[str, object], error: type, message: str) -> None:
    model, keep_prob, noise = _corpus_tables()
    arguments: dict[str, object] = {"keep_prob": keep_prob, "noise": noise, "epochs": 1, **kwargs}
    with pytest.raises(error, match=message):
        train_word2vec(model, [torch.tensor([0, 1, 2, 3])], **arguments)  # type: ignore[arg-type]


def test_train_word2vec_accepts_numpy_sizes_and_a_finished_resume() -> None:
    model, keep_prob, noise = _corpus_tables()
    sentences = [torch.tensor([0, 1, 2, 3])]
    history = train_word2vec(model, sentences, keep_prob, noise, epochs=np.int64(1), batch_size=np.int64(2))
    assert [row["epoch"] for row in history] == [1]
    assert train_word2vec(model, sentences, keep_prob, noise, epochs=1, start_epoch=1) == []  # nothing left to do


def test_vocabulary_tables_and_vectors_reject_degenerate_input() -> None:
    with pytest.raises(ValueError, match="max_size=0 must be at least 1"):
        Vocabulary.build([["a", "b"]], min_count=1, max_size=0)
    with pytest.raises(TypeError, match="words must be str, got int 1"):
        Vocabulary.build([[1, 2]], min_count=1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"counts must have shape \(V,\)=\(2,\)"):
        Vocabulary(("a", "b"), torch.tensor([3]))
    with pytest.raises(ValueError, match="words is empty"):
        Vocabulary((), torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match="lists of words"):
        Vocabulary(("a", "b"), torch.tensor([3, 2])).encode("a b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        noise_distribution(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="positive total"):
        noise_distribution(torch.zeros(3, dtype=torch.long))  # used to return NaN probabilities
    with pytest.raises(ValueError, match="non-empty"):
        keep_probabilities(torch.zeros(0, dtype=torch.long))
    centres, contexts, mask = context_windows([], window=2)  # no sentence: no window (used to raise in torch)
    assert centres.shape == (0,) and contexts.shape == mask.shape == (0, 4)
    with pytest.raises(ValueError, match=r"inputs \(0, 2\) is empty"):
        _model("negative").hidden(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="words is empty"):
        WordVectors((), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="k=0 must be a positive int"):
        _toy_vectors().nearest("king", k=0)
