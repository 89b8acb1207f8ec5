"""Masked-language modelling: 15% chosen, 80/10/10 corruption, whole words, and the loss of BertForPreTraining.

Masking statistics are checked on a large seeded sample, with tolerances of 5 binomial standard deviations
(sqrt(p (1 - p) / n)): a correct implementation fails them with probability below 1e-6, a wrong rate (0.12 instead
of 0.15, 85/5/10) fails them for certain. The losses are checked against values computed by hand with `math.log`
and against Hugging Face's `BertForPreTraining` loss (float64).
"""

from __future__ import annotations

import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported (in the Hugging Face test): no network

import pytest
import torch

from llmdocs.testing import assert_equivalent
from llmdocs.training.masked_lm import IGNORE_INDEX, continuation_mask, mask_tokens, mlm_accuracy, mlm_loss
from llmdocs.training.next_sentence import NOT_NEXT, nsp_loss

V, MASK_ID = 1000, 4  # ids 0..4 play [PAD] [UNK] [CLS] [SEP] [MASK]


def rows(B: int, T: int, seed: int = 0, n_pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids `[CLS] w ... w [SEP] [PAD]*n_pad` with words in [5, V), and their special-tokens mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    ids[:, 0] = 2
    ids[:, T - 1 - n_pad] = 3
    if n_pad:
        ids[:, T - n_pad :] = 0
    special = torch.zeros(B, T, dtype=torch.bool)
    special[:, 0] = True
    special[:, T - 1 - n_pad :] = True
    return ids, special


def within(observed: float, p: float, n: int, sds: float = 5.0) -> bool:
    """Whether a rate observed on n Bernoulli(p) trials is within `sds` binomial standard deviations of p."""
    return abs(observed - p) <= sds * math.sqrt(p * (1 - p) / n)  # not rounding: sampling error


# ---- continuation_mask ---------------------------------------------------------------------------------------------


def test_continuation_mask_marks_double_hash_pieces_from_a_list_or_a_dict() -> None:
    tokens = ["[PAD]", "un", "##aff", "##able", "#", "##"]
    assert continuation_mask(tokens).tolist() == [False, False, True, True, False, True]
    assert continuation_mask({"##x": 2, "a": 0}).tolist() == [False, False, True]  # id 1 missing: not "##"
    with pytest.raises(TypeError, match="not a string"):
        continuation_mask("##abc")
    with pytest.raises(ValueError, match="empty"):
        continuation_mask([])
    for bad in (-1, 1.0, True):  # a negative id would silently mark the last id; a float id fails in indexing
        with pytest.raises(ValueError, match="ids must be integers >= 0"):
            continuation_mask({"##x": bad, "a": 0})


# ---- mask_tokens -----------------------------------------------------------------------------------------------------


def test_rates_are_15_percent_chosen_then_80_10_10() -> None:
    ids, special = rows(64, 512)
    masked, labels = mask_tokens(
        ids,
        vocab_size=V,
        mask_token_id=MASK_ID,
        special_tokens_mask=special,
        generator=torch.Generator().manual_seed(1),
    )
    chosen = labels != IGNORE_INDEX
    n_maskable, n_chosen = int((~special).sum()), int(chosen.sum())
    assert within(n_chosen / n_maskable, 0.15, n_maskable)
    to_mask = chosen & (masked == MASK_ID)
    kept = chosen & (masked == ids)
    replaced = chosen & ~to_mask & ~kept
    # a random token equals the original or [MASK] with probability 1/V each: 0.0001 of the chosen, far below 5 sd
    assert within(int(to_mask.sum()) / n_chosen, 0.8, n_chosen)
    assert within(int(replaced.sum()) / n_chosen, 0.1, n_chosen)
    assert within(int(kept.sum()) / n_chosen, 0.1, n_chosen)
    random_ids = masked[replaced]
    assert int(random_ids.min()) >= 0 and int(random_ids.max()) < V
    assert within(float((random_ids < V // 2).float().mean()), 0.5, random_ids.numel())  # uniform over [0, V)
    assert torch.equal(masked[~chosen], ids[~chosen])  # what is not chosen is never changed
    assert torch.equal(labels[chosen], ids[chosen])  # labels are the original ids


def test_special_tokens_and_padding_are_never_chosen() -> None:
    ids, special = rows(32, 40, n_pad=10)
    for seed in range(5):
        masked, labels = mask_tokens(
            ids,
            vocab_size=V,
            mask_token_id=MASK_ID,
            special_tokens_mask=special,
            mlm_probability=0.9,
            generator=torch.Generator().manual_seed(seed),
        )
        assert (labels[special] == IGNORE_INDEX).all()
        assert torch.equal(masked[special], ids[special])
    only_padding = torch.zeros(2, 5, dtype=torch.long)
    _, labels = mask_tokens(
        only_padding, vocab_size=V, mask_token_id=MASK_ID, special_tokens_mask=torch.ones(2, 5, dtype=torch.bool)
    )
    assert (labels == IGNORE_INDEX).all()  # no maskable token: no label, even with at_least_one


def whole_word_setup() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ids in which ids >= 500 are "##" pieces, the continuation mask, the special mask and each token's word id."""
    ids, special = rows(32, 128, seed=3)
    is_continuation = torch.arange(V) >= 500
    is_continuation[:5] = False
    ids[:, 1] = 700  # a "##" piece right after [CLS] starts a word of its own
    word = torch.zeros_like(ids)
    for b in range(ids.shape[0]):
        current = -1
        for t in range(ids.shape[1]):
            piece_of_previous = bool(is_continuation[ids[b, t]]) and t > 0 and not special[b, t - 1]
            if not special[b, t] and not piece_of_previous:
                current += 1
            word[b, t] = current
    return ids, is_continuation, special, word


def test_whole_word_masking_chooses_words_together_at_the_same_token_rate() -> None:
    ids, is_continuation, special, word = whole_word_setup()
    _, labels = mask_tokens(
        ids,
        vocab_size=V,
        mask_token_id=MASK_ID,
        special_tokens_mask=special,
        is_continuation=is_continuation,
        generator=torch.Generator().manual_seed(0),
    )
    chosen = labels != IGNORE_INDEX
    assert not chosen[special].any()
    n_words = 0
    for b in range(ids.shape[0]):
        for w in word[b][~special[b]].unique():
            in_word = (word[b] == w) & ~special[b]
            assert chosen[b][in_word].all() or not chosen[b][in_word].any(), f"word {w} of row {b} was split"
            n_words += 1
    assert n_words < int((~special).sum()) * 0.6  # the test data does have multi-piece words
    assert chosen[:, 1].any() and not chosen[:, 1].all()  # "##" after [CLS] is a word: sometimes chosen
    # Each word is chosen with probability 0.15, so each token is too; tokens of a word are correlated, so the
    # standard deviation of the token rate is at most that of the word rate, sqrt(p (1 - p) / n_words).
    n_maskable = int((~special).sum())
    assert within(int(chosen.sum()) / n_maskable, 0.15, n_words)
    assert torch.equal(labels[chosen], ids[chosen])


def test_same_generator_state_gives_the_same_masks_and_input_is_untouched() -> None:
    ids, special = rows(4, 30)
    before = ids.clone()
    kwargs = dict(vocab_size=V, mask_token_id=MASK_ID, special_tokens_mask=special)
    first = mask_tokens(ids, **kwargs, generator=torch.Generator().manual_seed(7))
    again = mask_tokens(ids, **kwargs, generator=torch.Generator().manual_seed(7))
    other = mask_tokens(ids, **kwargs, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])
    assert torch.equal(ids, before)  # not modified in place
    assert first[0].data_ptr() != ids.data_ptr()
    assert first[1].dtype == torch.long


def test_at_least_one_prediction_per_row_by_default_and_none_forced_otherwise() -> None:
    ids, special = rows(200, 5)  # 3 maskable tokens per row
    kwargs = dict(vocab_size=V, mask_token_id=MASK_ID, special_tokens_mask=special, mlm_probability=0.01)
    _, labels = mask_tokens(ids, **kwargs, generator=torch.Generator().manual_seed(0))
    per_row = (labels != IGNORE_INDEX).sum(dim=1)
    assert (per_row >= 1).all()
    assert (per_row == 1).float().mean() > 0.9  # almost always the one forced token
    forced = labels != IGNORE_INDEX
    assert within(float(forced[:, 1:4].float().mean(dim=0)[0]), 1 / 3, 200)  # the forced token is uniform
    _, labels = mask_tokens(ids, **kwargs, at_least_one=False, generator=torch.Generator().manual_seed(0))
    assert ((labels != IGNORE_INDEX).sum(dim=1) == 0).float().mean() > 0.9  # Hugging Face's rule: empty rows


def test_at_least_one_takes_a_whole_word() -> None:
    ids = torch.tensor([[2, 10, 600, 601, 11, 3]] * 50)  # [CLS] w ##p ##p w [SEP]: words {10 600 601}, {11}
    special = torch.tensor([[True, False, False, False, False, True]] * 50)
    is_continuation = torch.arange(V) >= 500
    _, labels = mask_tokens(
        ids,
        vocab_size=V,
        mask_token_id=MASK_ID,
        special_tokens_mask=special,
        mlm_probability=0.001,
        is_continuation=is_continuation,
        generator=torch.Generator().manual_seed(0),
    )
    chosen = labels != IGNORE_INDEX
    patterns = {tuple(row.tolist()) for row in chosen[:, 1:5]}
    assert patterns == {(True, True, True, False), (False, False, False, True)}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (dict(mlm_probability=0.0), ValueError, r"mlm_probability must be in \(0, 1\)"),
        (dict(mlm_probability=1.0), ValueError, r"mlm_probability must be in \(0, 1\)"),
        (dict(special_tokens_mask=torch.zeros(2, 4, dtype=torch.bool)), ValueError, "special_tokens_mask must have"),
        (dict(special_tokens_mask=torch.zeros(2, 5)), TypeError, "special_tokens_mask must be a bool"),
        (dict(input_ids=torch.zeros(2, 5)), TypeError, "input_ids must be an integer"),
        (dict(input_ids=torch.zeros(10, dtype=torch.long)), ValueError, r"input_ids must have shape \(B, T\)"),
        (dict(mask_token_id=V), ValueError, "mask_token_id=1000 is not an id"),
        (dict(vocab_size=0), ValueError, "vocab_size must be a positive int"),
        (dict(is_continuation=torch.zeros(5, dtype=torch.bool)), ValueError, "outside is_continuation"),
        (dict(is_continuation=torch.zeros(V)), TypeError, "is_continuation must be a 1-D bool"),
    ],
)
def test_bad_arguments_are_named(change: dict, error: type, message: str) -> None:
    ids, special = rows(2, 5)
    kwargs = dict(input_ids=ids, vocab_size=V, mask_token_id=MASK_ID, special_tokens_mask=special) | change
    input_ids = kwargs.pop("input_ids")
    with pytest.raises(error, match=message):
        mask_tokens(input_ids, **kwargs)


# ---- mlm_loss and mlm_accuracy ---------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_mlm_loss_is_the_mean_cross_entropy_over_predicted_positions_by_hand() -> None:
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [50.0, -50.0, 0.0]]], dtype=torch.float64)  # (1, 3, 3)
    labels = torch.tensor([[2, 0, IGNORE_INDEX]])
    first = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))  # 0.4076
    second = math.log(3)  # uniform over 3 classes
    expected = torch.tensor((first + second) / 2, dtype=torch.float64)
    assert_equivalent(mlm_loss(logits, labels), expected)
    # the same with logits already gathered at the predicted positions: (M, V) and (M,)
    predicted = labels != IGNORE_INDEX
    assert_equivalent(mlm_loss(logits[predicted], labels[predicted]), expected)


def test_mlm_loss_refuses_bad_input_instead_of_returning_nan() -> None:
    logits = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match="no position is predicted"):
        mlm_loss(logits, torch.full((2, 3), IGNORE_INDEX))
    with pytest.raises(ValueError, match=r"needs labels \(2, 3\), got \(2, 4\)"):
        mlm_loss(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be ids in \[0, 5\)"):
        mlm_loss(logits, torch.tensor([[5, IGNORE_INDEX, 0], [0, 0, 0]]))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        mlm_loss(logits, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="logits must be a float tensor"):
        mlm_loss(torch.zeros(2, 3, 5, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    for bad in (-1, 5):  # a label -1 (not IGNORE_INDEX) would count as a position no argmax can hit
        with pytest.raises(ValueError, match=rf"labels must be ids in \[0, 5\) .*got \[{bad}\]"):
            mlm_accuracy(logits, torch.tensor([[bad, IGNORE_INDEX, 0], [0, 0, 0]]))


def test_mlm_accuracy_counts_argmax_hits_at_predicted_positions() -> None:
    logits = torch.tensor([[[0.0, 1.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 9.0], [0.0, 0.0, 9.0]]])  # (1, 4, 3)
    assert mlm_accuracy(logits, torch.tensor([[1, 2, 2, IGNORE_INDEX]])) == (2, 3)
    assert mlm_accuracy(logits, torch.full((1, 4), IGNORE_INDEX)) == (0, 0)


@pytest.mark.numerics
def test_losses_equal_hugging_face_bert_for_pretraining_loss() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    model = transformers.BertForPreTraining(config).double().eval()
    B, T = 3, 9
    ids = torch.randint(5, 50, (B, T))
    ids[:, 0], ids[:, -1] = 2, 3
    special = torch.zeros(B, T, dtype=torch.bool)
    special[:, [0, -1]] = True
    masked, labels = mask_tokens(
        ids, vocab_size=50, mask_token_id=4, special_tokens_mask=special, generator=torch.Generator().manual_seed(0)
    )
    next_sentence_label = torch.tensor([0, NOT_NEXT, 0])
    with torch.no_grad():
        out = model(input_ids=masked, labels=labels, next_sentence_label=next_sentence_label)
    ours = mlm_loss(out.prediction_logits, labels) + nsp_loss(out.seq_relationship_logits, next_sentence_label)
    assert_equivalent(ours, out.loss, depth=config.num_hidden_layers)
    reference_mlm = torch.nn.CrossEntropyLoss()(out.prediction_logits.view(-1, 50), labels.view(-1))
    assert_equivalent(mlm_loss(out.prediction_logits, labels), reference_mlm)


def test_found_in_a_break_test() -> None:
    """Narrow integer dtypes work (int64 out), and bad ids or arguments fail with errors that name them."""
    ids = torch.tensor([[2, 5, 6, 7, 8, 3]])
    special = torch.tensor([[True, False, False, False, False, True]])
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.uint8, torch.int16, torch.int32):
        masked, labels = mask_tokens(ids.to(dtype), vocab_size=30_522, mask_token_id=4, special_tokens_mask=special,
                                     generator=g)  # fmt: skip
        assert masked.dtype == labels.dtype == torch.int64
    logits = torch.randn(1, 6, 10)
    assert torch.equal(mlm_loss(logits, labels.int().clamp(max=9)), mlm_loss(logits, labels.clamp(max=9)))
    with pytest.raises(TypeError, match="mask_token_id must be an int"):
        mask_tokens(ids, vocab_size=10, mask_token_id=4.5, special_tokens_mask=special)
    with pytest.raises(TypeError, match="mlm_probability must be a number"):
        mask_tokens(ids, vocab_size=10, mask_token_id=4, special_tokens_mask=special, mlm_probability="0.15")
    with pytest.raises(ValueError, match=r"input_ids must be ids in \[0, vocab_size=8\)"):
        mask_tokens(ids, vocab_size=8, mask_token_id=4, special_tokens_mask=special)
