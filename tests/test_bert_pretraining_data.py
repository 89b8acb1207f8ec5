"""BERT's pre-training data: WikiText-2 and People's Daily as documents of sentences, tokenization, batches.

`PretrainingBatches` must be a pure function of the batch index (the training loop resumes by index), lay rows
out as `[CLS] A [SEP] B [SEP]` with the right segments and padding, and never predict special tokens or padding.
"""

from __future__ import annotations

import random

import pytest
import torch

from llmdocs.data.bert_pretraining import PretrainingBatches, split_documents, tokenize_documents
from llmdocs.data.people_daily import people_daily_documents, split_chinese_sentences
from llmdocs.data.wikitext import load_wikitext2, split_wikitext_sentences, wikitext2_documents
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training.masked_lm import IGNORE_INDEX
from llmdocs.training.next_sentence import IS_NEXT, NOT_NEXT, SentencePair, make_nsp_pairs

# ---- WikiText-2 and People's Daily -----------------------------------------------------------------------------------


def test_wikitext2_has_600_60_60_articles_of_sentences_without_headings() -> None:
    train = wikitext2_documents("train")
    assert len(train) == 600 and sum(map(len, train)) == 76_556
    assert train[0][2] == "Released in January 2011 in Japan , it is the third game in the Valkyria series ."
    assert "tactical role-playing video game" in train[0][1]  # "@-@" undone
    valid = wikitext2_documents("valid", unescape=False)
    assert len(valid) == 60 and sum(map(len, valid)) == 8_038
    assert any("@-@" in s for doc in valid for s in doc)
    assert not any(s.startswith("=") for doc in train + valid for s in doc)  # no heading is a sentence
    assert "Homarus gammarus" not in {s for doc in valid for s in doc}  # nor is a title


def test_wikitext_loader_checks_the_split_and_returns_the_raw_file() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        load_wikitext2("validation")
    with pytest.raises(ValueError, match="split must be one of"):
        wikitext2_documents("dev")
    first, second = wikitext2_documents("valid"), wikitext2_documents("valid")  # parsed once, new lists each call
    assert first == second and first is not second and first[0] is not second[0]
    first[0].append("changed by the caller")
    assert wikitext2_documents("valid") == second
    assert load_wikitext2("test").startswith(" \n = Robert Boulter = \n")


def test_wikitext_sentence_splitter() -> None:
    assert split_wikitext_sentences(" A St. Louis team won 3 @.@ 5 games . Really ? Yes ! ") == [
        "A St. Louis team won 3 @.@ 5 games .",
        "Really ?",
        "Yes !",
    ]
    assert split_wikitext_sentences('He said " Go . " Then " it " ended . . . Next') == [
        'He said " Go . "',  # the closing quote stays
        'Then " it " ended . . .',
        "Next",
    ]
    assert split_wikitext_sentences(" ") == []


def test_people_daily_paragraphs_are_documents_of_sentences() -> None:
    documents = people_daily_documents()
    assert len(documents) == 19_484 and sum(map(len, documents)) == 44_533
    assert documents[15] == ["谢谢！", "（新华社北京１２月３１日电）"]
    assert sum(len(d) == 1 for d in documents) == 9_872
    assert split_chinese_sentences("他说：“好！”然后走了。真的？！嗯") == [
        "他说：“好！”",
        "然后走了。",
        "真的？！",
        "嗯",
    ]
    assert split_chinese_sentences("  ") == []


def test_split_documents_holds_out_the_last_or_a_seeded_sample() -> None:
    documents = list(range(100))
    train, held = split_documents(documents, 0.05)
    assert held == [95, 96, 97, 98, 99] and train == list(range(95))
    train, held = split_documents(documents, 0.05, seed=1)
    assert len(held) == 5 and sorted(train + held) == documents and held != [95, 96, 97, 98, 99]
    assert split_documents(documents, 0.05, seed=1) == (train, held)
    with pytest.raises(ValueError, match=r"held_out must be a fraction in \(0, 1\)"):
        split_documents(documents, 1.0)
    with pytest.raises(ValueError, match="leaves a part empty"):
        split_documents([1], 0.5)


# ---- tokenize_documents ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_tokenizer() -> WordPieceTokenizer:
    minilm = pytest.importorskip("llmdocs.data.minilm")
    return WordPieceTokenizer.from_vocab_file(minilm.minilm_dir() / "vocab.txt")


def test_tokenize_documents_equals_the_tokenizer_sentence_by_sentence(minilm_tokenizer: WordPieceTokenizer) -> None:
    tok = minilm_tokenizer
    tricky = ["Héllo [MASK] wörld\tagain\u3000x", "中国人民abc，好。", "a\x00b \u200bc  d", "   ", "(CJK)北京 [SEP]"]
    documents = [*wikitext2_documents("valid")[:3], tricky, *people_daily_documents(max_lines=200)]
    expected = [[tok.convert_tokens_to_ids(tok.tokenize(s)) for s in doc] for doc in documents]
    expected = [[ids for ids in doc if ids] for doc in expected]
    assert tokenize_documents(documents, tok) == [doc for doc in expected if doc]
    assert tokenize_documents([[""], [], ["  "]], tok) == []
    with pytest.raises(TypeError, match="sentences must be strings"):
        tokenize_documents([[["already", "split"]]], tok)


# ---- PretrainingBatches ----------------------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)] + [f"##p{i}" for i in range(10)]


def tiny_pairs(n: int = 37, seed: int = 0) -> list[SentencePair]:
    """Pairs of ids 5..34, with some empty Bs (nsp=False chunks)."""
    rng = random.Random(seed)
    words = lambda k: [rng.randrange(5, len(VOCAB)) for _ in range(k)]  # noqa: E731
    return [
        SentencePair(words(rng.randint(1, 9)), words(rng.choice([0, 1, 4, 8])), rng.random() < 0.5) for _ in range(n)
    ]


def test_batches_lay_out_cls_a_sep_b_sep_with_segments_padding_and_labels() -> None:
    tok = WordPieceTokenizer(VOCAB)
    pairs = tiny_pairs()
    batches = PretrainingBatches(pairs, batch_size=8, tokenizer=tok, shuffle=False, mlm_probability=0.3)
    assert len(batches) == 5  # 37 pairs: the last batch of 5 is kept
    seen = 0
    for index in range(len(batches)):
        batch = batches(index)
        B, T = batch["input_ids"].shape
        for name in ("token_type_ids", "attention_mask", "labels"):
            assert batch[name].shape == (B, T) and batch[name].dtype == torch.long
        assert batch["next_sentence_label"].shape == (B,)
        original = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])
        chosen = batch["labels"] != IGNORE_INDEX
        assert chosen.any(dim=1).all()  # at least one prediction per row
        for row, pair in enumerate(pairs[seen : seen + B]):
            a, b = pair.tokens_a, pair.tokens_b
            ids = [2, *a, 3] + ([*b, 3] if b else [])
            n = len(ids)
            assert original[row].tolist() == ids + [0] * (T - n)
            assert batch["token_type_ids"][row].tolist() == [0] * (len(a) + 2) + [1] * (n - len(a) - 2) + [0] * (T - n)
            assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (T - n)
            specials = [0, len(a) + 1] + ([n - 1] if b else []) + list(range(n, T))
            assert (batch["labels"][row, specials] == IGNORE_INDEX).all()  # [CLS], [SEP], [PAD] never predicted
            assert torch.equal(batch["input_ids"][row, specials], original[row, specials])
            assert batch["next_sentence_label"][row] == (NOT_NEXT if pair.is_random_next else IS_NEXT)
        longest = max(len(p.tokens_a) + len(p.tokens_b) + (3 if p.tokens_b else 2) for p in pairs[seen : seen + B])
        assert longest == T  # padded to the longest row
        seen += B
    assert seen == len(pairs)


def test_batches_are_a_pure_function_of_the_index() -> None:
    tok = WordPieceTokenizer(VOCAB)
    pairs = tiny_pairs(40)
    make = lambda seed=0: PretrainingBatches(pairs, batch_size=6, tokenizer=tok, seed=seed)  # noqa: E731
    forward = make()
    assert len(forward) == 6  # 40 // 6: the partial batch is dropped when shuffling
    in_order = [forward(i) for i in range(14)]  # more than 2 epochs
    backward = make()
    for i in reversed(range(14)):
        for name, tensor in backward(i).items():
            assert torch.equal(tensor, in_order[i][name]), f"batch {i}, {name}"
    # epochs shuffle differently and mask anew; another seed gives other batches
    first_epoch = {tuple(forward.indices(i)) for i in range(6)}
    assert first_epoch != {tuple(forward.indices(i)) for i in range(6, 12)}
    assert not torch.equal(make(seed=1)(0)["input_ids"], in_order[0]["input_ids"])


def test_whole_word_batches_choose_pieces_with_their_word() -> None:
    tok = WordPieceTokenizer(VOCAB)
    rng = random.Random(0)
    # words of one start (ids 5..24) and 0-3 "##" pieces (ids 25..34)
    text = [t for _ in range(400) for t in [rng.randrange(5, 25)] + [rng.randrange(25, 35)] * rng.randint(0, 3)]
    pairs = [SentencePair(text[i : i + 20], text[i + 20 : i + 40], False) for i in range(0, len(text) - 40, 40)]
    batches = PretrainingBatches(pairs, batch_size=8, tokenizer=tok, whole_word=True, mlm_probability=0.4)
    for index in range(3):
        batch = batches(index)
        chosen = (batch["labels"] != IGNORE_INDEX).tolist()
        original = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"]).tolist()
        for row_ids, row_chosen in zip(original, chosen, strict=True):
            for t in range(1, len(row_ids)):
                piece = row_ids[t] >= 25 and row_ids[t - 1] not in (2, 3)
                if piece:  # a "##" piece is chosen exactly when the token before it (same word) is
                    assert row_chosen[t] == row_chosen[t - 1]


def test_batches_refuse_bad_settings() -> None:
    tok = WordPieceTokenizer(VOCAB)
    pairs = tiny_pairs(5)
    with pytest.raises(ValueError, match="do not make one batch"):
        PretrainingBatches(pairs, batch_size=6, tokenizer=tok)
    assert len(PretrainingBatches(pairs, batch_size=6, tokenizer=tok, shuffle=False)) == 1
    with pytest.raises(ValueError, match="batch_size must be positive"):
        PretrainingBatches(pairs, batch_size=0, tokenizer=tok)
    with pytest.raises(TypeError, match="tokenizer must be a WordPieceTokenizer"):
        PretrainingBatches(pairs, batch_size=2, tokenizer=None)
    with pytest.raises(ValueError, match="mlm_probability"):
        PretrainingBatches(pairs, batch_size=2, tokenizer=tok, mlm_probability=0.0)
    with pytest.raises(ValueError, match="index must be an int >= 0"):
        PretrainingBatches(pairs, batch_size=2, tokenizer=tok)(-1)


def test_wikitext_pipeline_end_to_end(minilm_tokenizer: WordPieceTokenizer) -> None:
    documents = tokenize_documents(wikitext2_documents("valid")[:6], minilm_tokenizer)
    pairs = make_nsp_pairs(documents, 125, random.Random(0))
    batches = PretrainingBatches(pairs, batch_size=16, tokenizer=minilm_tokenizer, whole_word=True)
    batch = batches(0)
    assert batch["input_ids"].shape[0] == 16 and batch["input_ids"].shape[1] <= 128
    rate = (batch["labels"] != IGNORE_INDEX).sum() / ((batch["attention_mask"] == 1).sum() - 16 * 3)
    assert 0.05 < float(rate) < 0.3  # about 15% of the text tokens (not a statistical test: one batch)


def test_a_document_given_as_a_string_is_refused() -> None:
    from llmdocs.tokenizers import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat"])
    with pytest.raises(TypeError, match="each document must be a list of sentences, got a str"):
        tokenize_documents(["the cat"], tokenizer)
