"""Fill-mask with our BERT: the candidates and probabilities of Hugging Face's BertForPreTraining, and clear errors."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import pytest
import torch
from weights import perturb

from llmdocs.generation.fill_mask import fill_mask
from llmdocs.models.bert import BertConfig, BertForPreTraining
from llmdocs.testing import assert_equivalent
from llmdocs.tokenizers import WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "river", "bank", "money", "of", "a", "##s", "."]


@pytest.fixture
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(VOCAB)


@pytest.fixture
def model() -> BertForPreTraining:
    torch.manual_seed(0)
    return perturb(BertForPreTraining(BertConfig.tiny(len(VOCAB), n_layers=2))).double()


@pytest.mark.numerics
def test_candidates_are_the_softmax_top_k_of_hugging_face(model, tokenizer) -> None:
    transformers = pytest.importorskip("transformers")
    from llmdocs.interop import hf_bert

    hf = hf_bert.to_hf(model)
    assert isinstance(hf, transformers.BertForPreTraining)
    text = "the [MASK] of the river [MASK] ."
    gaps = fill_mask(model, tokenizer, text, top_k=4)
    enc = tokenizer.encode(text)
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        logits = hf(ids, token_type_ids=torch.tensor([enc["token_type_ids"]])).prediction_logits[0]  # (T, V)
    positions = [i for i, t in enumerate(enc["input_ids"]) if t == tokenizer.vocab["[MASK]"]]
    assert len(gaps) == len(positions) == 2
    for gap, position in zip(gaps, positions, strict=True):
        probs = logits[position].softmax(-1)  # (V,)
        top = probs.topk(4)
        assert [token for token, _ in gap] == tokenizer.convert_ids_to_tokens(top.indices.tolist())
        assert_equivalent(torch.tensor([p for _, p in gap], dtype=torch.float64), top.values, depth=2)


def test_order_mode_and_probabilities(model, tokenizer) -> None:
    model.train()
    gaps = fill_mask(model, tokenizer, "a [MASK] of money", top_k=len(VOCAB))
    assert model.training  # left as it was
    probs = [p for _, p in gaps[0]]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)  # not rounding: float32 softmax summed over all V tokens
    again = fill_mask(model, tokenizer, "a [MASK] of money", top_k=len(VOCAB))
    assert again == gaps  # dropout is off while predicting


def test_bad_input(model, tokenizer) -> None:
    with pytest.raises(ValueError, match=r"text has no \[MASK\] token"):
        fill_mask(model, tokenizer, "the river bank")
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 13\]"):
        fill_mask(model, tokenizer, "the [MASK]", top_k=0)
    with pytest.raises(TypeError, match="top_k must be an int"):
        fill_mask(model, tokenizer, "the [MASK]", top_k=2.5)
    with pytest.raises(TypeError, match="text must be a str"):
        fill_mask(model, tokenizer, ["the [MASK]"])
    with pytest.raises(ValueError, match="the tokenizer has 6 ids but the model's vocab_size is 13"):
        fill_mask(model, WordPieceTokenizer(VOCAB[:6]), "the [MASK]")
    with pytest.raises(ValueError, match="context"):
        fill_mask(model, tokenizer, "the " * 40 + "[MASK]")


# ---- the shipped pre-trained BERTs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "corpus"), [("bert-wikitext2", "wikitext2"), ("bert-people-daily", "people-daily+reviews")]
)
def test_shipped_berts_load_with_their_tokenizer_and_record(name: str, corpus: str) -> None:
    import json

    from llmdocs.pretrained import load_bert, pretrained_dir
    from llmdocs.records import load_record

    model, tokenizer, meta = load_bert(name)
    assert not model.training and model.config.vocab_size == tokenizer.vocab_size
    assert all(p.dtype == torch.float32 for p in model.parameters())
    folder = pretrained_dir(name)
    assert json.loads((folder / "config.json").read_text(encoding="utf-8"))["weights_dtype"] == "float16"
    assert (folder / "model.safetensors").stat().st_size < 12e6  # float16: about 2 bytes per parameter
    record = load_record(name.replace("-", "_"))
    results = meta["results"]
    assert results["corpus"] == record["corpus"] == corpus and results["steps"] == record["steps"]
    assert results["val_mlm_accuracy"] == record["val_mlm_accuracy"]  # the record is the run that was shipped
    top = fill_mask(model, tokenizer, "the [MASK] ." if corpus == "wikitext2" else "今天[MASK]。", top_k=3)[0]
    assert len(top) == 3 and all(0.0 < p < 1.0 for _, p in top)


def test_load_bert_refuses_other_models() -> None:
    from llmdocs.pretrained import load_bert

    with pytest.raises(ValueError, match="unknown pretrained model 'bert-nope'"):
        load_bert("bert-nope")
    with pytest.raises(ValueError, match="holds no BERT model"):
        load_bert("dates-en-zh")  # an encoder-decoder Transformer
    with pytest.raises(ValueError, match=r"a fine-tuned delta .* use load_minilm_classifier"):
        load_bert("minilm-sms-spam")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        load_bert("../pretrained/bert-wikitext2")  # a name, not a path
    with pytest.raises(TypeError, match="name must be the name of a shipped model"):
        load_bert(None)
