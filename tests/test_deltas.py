"""Fine-tuned deltas: only the trained tensors are saved, and applied to the base they reproduce the tuned model."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from weights import perturb

from llmdocs.finetuning.deltas import load_finetuned, save_finetuned
from llmdocs.finetuning.freezing import freeze, mark_trainable
from llmdocs.models.bert import BertConfig, BertForSequenceClassification


def tuned_and_base() -> tuple[BertForSequenceClassification, BertForSequenceClassification]:
    torch.manual_seed(0)
    base = perturb(BertForSequenceClassification(BertConfig.tiny(40, n_layers=2), n_classes=3))
    tuned = BertForSequenceClassification(base.config, n_classes=3)
    tuned.load_state_dict(base.state_dict())
    freeze(tuned)
    mark_trainable(tuned, ["bert.layers.1.*", "bert.pooler.*", "classifier.*"])  # "last block" fine-tuning
    with torch.no_grad():  # what training would do: change the trainable tensors only
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return tuned, base


def test_delta_holds_only_the_trained_tensors_and_reproduces_the_model(tmp_path) -> None:
    tuned, base = tuned_and_base()
    path = save_finetuned(tmp_path / "delta", tuned, base="tiny-base", meta={"accuracy": 0.9})
    index = json.loads((path / "finetuned.json").read_text())
    trained = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert sorted(index["parameters"]) == sorted(trained)
    assert index["n_parameters"] == sum(p.numel() for p in tuned.parameters() if p.requires_grad)
    assert 0 < index["fraction_of_model"] < 1
    ids = torch.randint(0, 40, (2, 6))
    assert not torch.equal(base.eval()(ids), tuned.eval()(ids))
    meta = load_finetuned(path, base, base="tiny-base")
    assert meta["accuracy"] == 0.9 and meta["delta"]["base"] == "tiny-base"
    assert torch.equal(base(ids), tuned(ids))  # bit-identical: the frozen tensors were the base's already


def test_errors(tmp_path) -> None:
    tuned, base = tuned_and_base()
    path = save_finetuned(tmp_path / "delta", tuned, base="tiny-base")
    with pytest.raises(ValueError, match="is a delta on 'tiny-base', not on 'other'"):
        load_finetuned(path, base, base="other")
    with pytest.raises(ValueError, match="saved from a BertForSequenceClassification, not a Linear"):
        load_finetuned(path, nn.Linear(2, 2))
    wider = BertForSequenceClassification(BertConfig.tiny(40, n_layers=2, d_model=48, n_heads=4), n_classes=3)
    with pytest.raises(ValueError, match="differs from the model's"):
        load_finetuned(path, wider)
    shallow = BertForSequenceClassification(BertConfig.tiny(40, n_layers=1), n_classes=3)
    with pytest.raises(ValueError, match="lacks"):
        load_finetuned(path, shallow)
    with pytest.raises(FileNotFoundError, match="not a folder written by save_finetuned"):
        load_finetuned(tmp_path, base)
    freeze(tuned)
    with pytest.raises(ValueError, match="no trainable parameter"):
        save_finetuned(tmp_path / "none", tuned, base="tiny-base")
    with pytest.raises(ValueError, match="base must name"):
        save_finetuned(tmp_path / "none", base, base="")


def test_shipped_spam_classifier_is_a_small_delta_that_classifies_held_out_messages() -> None:
    from llmdocs.data.sms_spam import sms_spam_split
    from llmdocs.finetuning.classification import accuracy, encode_examples, predict
    from llmdocs.pretrained import available, load_minilm_classifier, pretrained_dir

    assert "minilm-sms-spam" in available()
    size = (pretrained_dir("minilm-sms-spam") / "finetuned.safetensors").stat().st_size
    model, tokenizer, meta = load_minilm_classifier("minilm-sms-spam")
    assert meta["labels"] == ["ham", "spam"] and meta["delta"]["base"] == "all-MiniLM-L6-v2"
    assert size < 0.1 * 4 * sum(p.numel() for p in model.parameters())  # under a tenth of the float32 model
    test = sms_spam_split()["test"][:200]  # messages it never saw (the split the record's 99.12% is measured on)
    data = encode_examples(tokenizer, test, max_length=128)
    assert accuracy(predict(model, data), data.labels) >= 0.97
