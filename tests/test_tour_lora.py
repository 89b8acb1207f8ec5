"""`llmdocs tour --chapter lora` and the shipped LoRA classifier it shows: all-MiniLM-L6-v2 with the peft adapter
`minilm-sms-spam-lora` (rank 16 on query and value, the classifier in full) classifies four messages, counts what was
trained against the frozen base in parameters and bytes, merges into a plain BERT with the same outputs, and draws the
singular values of the learned updates. The loader refuses names that are not LoRA adapters on MiniLM, and a shipped
adapter whose files are missing gets the reinstall command."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import llmdocs.pretrained as pretrained
from llmdocs.cli import main
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.demos.lora import MESSAGES, _test_split
from llmdocs.cli.registry import get_demo
from llmdocs.finetuning.lora import LoRALinear, count_lora_parameters, merge_lora
from llmdocs.models.bert import BertForSequenceClassification
from llmdocs.pretrained import (
    LORA_CLASSIFIERS,
    available,
    load_bert,
    load_image_classifier,
    load_minilm_classifier,
    load_minilm_lora_classifier,
    pretrained_dir,
)
from llmdocs.testing import assert_close, assert_equivalent
from llmdocs.tokenizers import WordPieceTokenizer

NAME = "minilm-sms-spam-lora"
Loaded = tuple[BertForSequenceClassification, WordPieceTokenizer, dict[str, Any]]


@pytest.fixture(scope="module")
def shipped() -> Loaded:
    """The shipped classifier, loaded once (about a second); tests that change it work on a copy."""
    return load_minilm_lora_classifier(NAME)


def _logits(model: torch.nn.Module, tokenizer: WordPieceTokenizer, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The logits (4, 2) of MESSAGES, with the model converted to ``dtype`` in place."""
    batch = tokenizer.encode_batch([text for text, _ in MESSAGES])
    with torch.no_grad():
        return model.to(dtype)(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]))


def test_the_demo_is_registered_after_llama() -> None:
    assert DEMO_MODULES.index("lora") == DEMO_MODULES.index("llama") + 1
    demo = get_demo("lora")
    assert demo.page == "chapters/lora.md" and demo.title == "LoRA: fine-tuning 1% of the weights"
    assert NAME in LORA_CLASSIFIERS and NAME in available()


def test_the_demo_counts_classifies_merges_and_draws_the_singular_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tour", "--chapter", "lora", "--fast", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"model: minilm-sms-spam-lora, .* test accuracy 9\d\.\d\d% on 906 held-out messages", out)
    assert "trained by: python examples/finetune_lora.py" in out
    assert "rank r=16 on the query and value projections of the 6 layers, each A (16, 384) and B (384, 16)" in out
    assert "scaled by lora_alpha / r = 32 / 16 = 2" in out
    assert re.search(r"all-MiniLM-L6-v2, frozen +22,713,216\n", out)
    assert re.search(r"12 adapters \(A and B\), trained +147,456\n", out)
    assert re.search(r"the new classifier, trained in full +770\n", out)
    assert re.search(r"trained +148,226 of 22,861,442 \(0\.648%\)", out)
    assert re.search(r"the base, model.safetensors +86\.7 MiB", out)
    assert re.search(r"the adapter, adapter_model.safetensors +582\.5 KiB \(0\.66% of the base\)", out)
    for text, truth in MESSAGES:  # the right class, no "x" mark
        assert re.search(rf"\n  {truth} +p\(spam\)=[01]\.\d{{3}}   {re.escape(text)}\n", out), text
    assert "12 updates added into their frozen weights, 0 LoRALinear left" in out
    assert "a plain BertForSequenceClassification of 22,713,986 parameters" in out
    assert re.search(r"max \|merged - unmerged\| of the four messages' logits: \S+ in float32, \S+ in float64", out)
    assert "the held-out test split" not in out  # fast: skipped
    assert "the learned updates have rank 16, as built" in out
    assert re.search(r"90% of \|\|B A\|\|_F\^2 lies in its top [\d to]+ directions for the queries", out)
    assert [p.name for p in tmp_path.iterdir()] == ["lora-singular-values.svg"]
    assert (tmp_path / "lora-singular-values.svg").stat().st_size > 10_000


def test_the_full_demo_scores_the_test_split_with_the_adapted_and_the_merged_model(
    shipped: Loaded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import llmdocs.data.sms_spam as sms_spam

    model, tokenizer, _ = shipped
    split = [(text, int(truth == "spam")) for text, truth in MESSAGES]  # a stand-in for the 906 test messages
    monkeypatch.setattr(sms_spam, "sms_spam_split", lambda seed=0: {"test": split})
    _test_split(model, merge_lora(copy.deepcopy(model)), tokenizer, {"test_predictions": "1010"})
    out = capsys.readouterr().out
    assert "the held-out test split (4 messages):" in out
    assert "adapted  accuracy 100.00%, the same predictions as the training run's" in out
    assert "merged   accuracy 100.00%, the same predictions as the training run's" in out


def test_the_loader_returns_the_unmerged_adapted_model_and_it_classifies_the_messages(shipped: Loaded) -> None:
    model, tokenizer, meta = shipped
    assert type(model) is BertForSequenceClassification and not model.training
    adapters = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert [n for n, _ in adapters] == [
        f"bert.layers.{i}.self_attn.{p}" for i in range(6) for p in ("q_proj", "v_proj")
    ]
    assert all(not m.merged and m.r == 16 and m.scaling == 2 for _, m in adapters)
    assert count_lora_parameters(model) == 12 * 16 * (384 + 384)
    assert meta["labels"] == ["ham", "spam"] and meta["adapter"]["peft_type"] == "LORA"
    assert meta["adapter"]["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["results"]["method"] == "lora" and meta["results"]["test_accuracy"] >= 0.98
    predicted = _logits(model, tokenizer).argmax(dim=-1).tolist()
    assert [meta["labels"][i] for i in predicted] == [truth for _, truth in MESSAGES]


@pytest.mark.numerics
def test_the_shipped_adapter_merges_into_a_plain_model_with_the_same_outputs(shipped: Loaded) -> None:
    model, tokenizer, _ = shipped
    depth = model.config.n_layers
    unmerged = _logits(model, tokenizer)  # (4, 2)
    assert_close(_logits(merge_lora(copy.deepcopy(model)), tokenizer), unmerged, depth=depth)  # float32, as shipped
    model64 = copy.deepcopy(model)
    unmerged64 = _logits(model64, tokenizer, torch.float64)
    assert_equivalent(_logits(merge_lora(model64), tokenizer, torch.float64), unmerged64, depth=depth)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("minilm-sms-spam-lora2", ValueError, "unknown pretrained model 'minilm-sms-spam-lora2'; available: "),
        ("../pretrained/minilm-sms-spam-lora", ValueError, "unknown pretrained model"),
        ("minilm-sms-spam", ValueError, "a fine-tuned delta on all-MiniLM-L6-v2, not a LoRA adapter .* use load_mini"),
        ("dates-en-zh", ValueError, "dates-en-zh is a full model, not a LoRA adapter on all-MiniLM-L6-v2"),
        (None, TypeError, "name must be the name of a shipped model"),
    ],
)
def test_names_that_are_not_lora_adapters_on_minilm_are_refused(name: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load_minilm_lora_classifier(name)  # type: ignore[arg-type]


def test_the_other_loaders_point_at_the_lora_loader() -> None:
    hint = f"{NAME} is a LoRA adapter on all-MiniLM-L6-v2, not"
    with pytest.raises(ValueError, match=f"{hint} a pre-trained BERT: use load_minilm_lora_classifier"):
        load_bert(NAME)
    with pytest.raises(ValueError, match=f"{hint} a fine-tuned delta on all-MiniLM-L6-v2: use load_minilm_lora_"):
        load_minilm_classifier(NAME)
    with pytest.raises(ValueError, match=rf"{hint} an image classifier \(ViT or ResNet\): use load_minilm_lora_"):
        load_image_classifier(NAME)


def test_a_shipped_adapter_with_missing_files_gets_the_reinstall_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped_folder = pretrained_dir(NAME)
    monkeypatch.setattr(pretrained, "_ROOT", tmp_path)  # an installation without the package data
    with pytest.raises(FileNotFoundError) as info:
        load_minilm_lora_classifier(NAME)
    assert str(info.value) == (
        f"{tmp_path / NAME} lacks adapter_config.json, adapter_model.safetensors, meta.json: the LoRA adapter "
        f"'{NAME}' ships inside llmdocs; reinstall llmdocs with its package data: pip install -e . (from the "
        "repository)"
    )
    shutil.copytree(shipped_folder, tmp_path / NAME)
    (tmp_path / NAME / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"{NAME} lacks meta.json: the LoRA adapter"):
        load_minilm_lora_classifier(NAME)


def test_an_adapter_on_another_base_or_without_labels_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "other-lora"
    shutil.copytree(pretrained_dir(NAME), folder)
    monkeypatch.setattr(pretrained, "_ROOT", tmp_path)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "bert-base-uncased"}))
    with pytest.raises(
        ValueError, match="is an adapter on 'bert-base-uncased', not on 'sentence-transformers/all-Mini"
    ):
        load_minilm_lora_classifier("other-lora")
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "meta.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(ValueError, match=r"meta.json must name the classes by id, e.g. \{\"labels\""):
        load_minilm_lora_classifier("other-lora")
