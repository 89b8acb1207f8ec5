"""Conversations as tokens: chat templates, and which tokens the assistant wrote.

A chat model reads a conversation as one token sequence in which special tokens mark who speaks. The conversation
itself is a list of messages, the format of OpenAI's API, Hugging Face's chat templates and TRL:

    [{"role": "system", "content": "You are terse."},      # optional, first
     {"role": "user", "content": "What is 2+2?"},           # then user and assistant turns, alternating
     {"role": "assistant", "content": "4"}]

Two templates turn it into tokens:

- a ``transformers`` tokenizer's own chat template (a Jinja program shipped with the model): SmolLM2 uses ChatML,
  ``<|im_start|>user\\nWhat is 2+2?<|im_end|>\\n<|im_start|>assistant\\n4<|im_end|>\\n``, after a default system
  message when the conversation has none;
- our minimal template for the from-scratch GPT ([render_chat][llmdocs.finetuning.chat.render_chat]): a role token
  before each message and ``<|end|>`` after it, nothing else,
  ``<|system|>You are terse.<|end|><|user|>What is 2+2?<|end|><|assistant|>4<|end|>``, encoded by our
  [BPETokenizer][llmdocs.tokenizers.bpe.BPETokenizer] trained with ``special_tokens=CHAT_SPECIAL_TOKENS``.

Supervised fine-tuning trains only on what the assistant wrote, its end-of-turn token included (so that the model
learns to stop): [tokenize_conversation][llmdocs.finetuning.chat.tokenize_conversation] returns the ``input_ids``
and an ``assistant_mask``, 1 on those tokens. It finds them by rendering prefixes of the conversation, the method
that works with any template (``transformers``' ``return_assistant_tokens_mask=True`` needs ``{% generation %}``
markers in the template, which SmolLM2's lacks): for the assistant message i,

    start = len(tokens(messages[:i] + generation prompt)),   end = len(tokens(messages[:i + 1]))

and the assistant wrote tokens ``start .. end - 1``, cut after the last end-of-turn token among them (ChatML adds a
newline after ``<|im_end|>`` that the model never generates). Both prefixes must be token prefixes of the whole
conversation; a template that renders an earlier turn differently once later turns follow (some reasoning models
drop their earlier thoughts) breaks this, and is refused with an error instead of a silently shifted mask.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section
    3.5 (supervised fine-tuning on demonstrations); Hugging Face transformers, "Chat templates"
    (``apply_chat_template``, ``return_assistant_tokens_mask``); OpenAI, ChatML (``<|im_start|>``/``<|im_end|>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from llmdocs.data.instructions import Message
from llmdocs.tokenizers.bpe import BPETokenizer

__all__ = [
    "CHAT_SPECIAL_TOKENS",
    "END_OF_TURN",
    "ROLES",
    "ROLE_TOKENS",
    "Message",
    "TokenizedChat",
    "check_messages",
    "encode_chat",
    "render_chat",
    "tokenize_conversation",
]

ROLES: tuple[str, ...] = ("system", "user", "assistant")
"""The roles a message may have."""

ROLE_TOKENS: dict[str, str] = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
"""Our minimal template's special token before a message of each role."""

END_OF_TURN: str = "<|end|>"
"""Our minimal template's special token after every message; the assistant learns to write it, and generation stops
at it."""

CHAT_SPECIAL_TOKENS: tuple[str, ...] = (*ROLE_TOKENS.values(), END_OF_TURN)
"""The four special tokens of our template: train a [BPETokenizer][llmdocs.tokenizers.bpe.BPETokenizer] with
``special_tokens=CHAT_SPECIAL_TOKENS``."""


class TokenizedChat(TypedDict):
    """A conversation as tokens: ``input_ids`` and, aligned with them, 1 where the assistant wrote the token."""

    input_ids: list[int]
    assistant_mask: list[int]


def check_messages(messages: object, name: str = "messages") -> list[Message]:
    """Check a conversation and return it as a list of ``{"role", "content"}`` dicts (copies).

    The rules: a list of messages with exactly the keys ``role`` and ``content``; the content is a string; an
    optional ``system`` message first; then ``user`` and ``assistant`` messages alternating, starting with ``user``.

    Args:
        messages: The conversation.
        name: The argument's name in error messages.

    Returns:
        The messages, as new dicts.

    Raises:
        TypeError: If ``messages`` is not a list or tuple of dicts, or a content is not a string.
        ValueError: If it is empty, holds only a system message, a key or role is unknown or missing, a system
            message is not first, or the turns do not alternate user / assistant starting with user.

    Examples:
        >>> check_messages([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
        [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}]
        >>> check_messages([{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}])
        Traceback (most recent call last):
        ...
        ValueError: messages[1] has role 'user' where 'assistant' was expected: turns alternate user, assistant, ...
    """
    if not isinstance(messages, list | tuple):
        raise TypeError(
            f"{name} must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )
    if not messages:
        raise ValueError(f"{name} is empty: a conversation needs at least one user message")
    checked: list[Message] = []
    for i, message in enumerate(messages):
        where = f"{name}[{i}]"
        if not isinstance(message, Mapping):
            raise TypeError(f"{where} must be a dict with 'role' and 'content', got {type(message).__name__}")
        keys = set(message)
        if keys != {"role", "content"}:
            missing, unknown = sorted({"role", "content"} - keys), sorted(keys - {"role", "content"}, key=str)
            raise ValueError(
                f"{where} must have exactly the keys 'role' and 'content'"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"{where} has role {role!r}; the roles are {list(ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"{where}['content'] must be a str, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise ValueError(f"{where} is a system message: only the first message may be one")
        checked.append({"role": role, "content": content})
    turns = checked[1:] if checked[0]["role"] == "system" else checked
    if not turns:
        raise ValueError(f"{name} holds only a system message: a conversation needs at least one user message")
    offset = len(checked) - len(turns)
    for j, message in enumerate(turns):
        expected = ("user", "assistant")[j % 2]
        if message["role"] != expected:
            raise ValueError(
                f"{name}[{offset + j}] has role {message['role']!r} where {expected!r} was expected: turns alternate "
                "user, assistant, user, ... (after an optional system message)"
            )
    return checked


def _check_contents(messages: list[Message], special_tokens: Sequence[str]) -> None:
    """Refuse a content holding a special token: it would be encoded as the marker itself, so a content with
    ``<|im_end|>`` then ``<|im_start|>user`` would fake a turn (and train it as the assistant's)."""
    for i, message in enumerate(messages):
        content = message["content"]
        inside = [token for token in special_tokens if token in content]
        if inside:
            first = min(inside, key=lambda token: (content.index(token), -len(token)))  # the first in the text
            raise ValueError(
                f"messages[{i}]['content'] contains the special token {first!r}: the template's markers may not "
                "appear in a message"
            )


def _hf_special_tokens(tokenizer: Any) -> list[str]:
    """A ``transformers`` tokenizer's special tokens: ``all_special_tokens`` and the added tokens marked special
    (ChatML's ``<|im_start|>``/``<|im_end|>``...), which it matches whole inside any text. Added tokens that are not
    special (some tokenizers add runs of spaces) are ordinary text."""
    tokens = [str(token) for token in getattr(tokenizer, "all_special_tokens", None) or []]
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    tokens += [str(token) for _, token in sorted(added.items()) if getattr(token, "special", False)]
    return [token for token in dict.fromkeys(tokens) if token]


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
    """Our minimal chat template, as a string: ``<|role|>content<|end|>`` per message, nothing in between.

        <|system|>You are terse.<|end|><|user|>What is 2+2?<|end|><|assistant|>4<|end|>

    No whitespace is added and there is no default system message, so every character is either a role token, the
    content, or an end token. With ``add_generation_prompt`` the string ends with ``<|assistant|>``: the prompt
    from which the model writes its answer, up to its ``<|end|>``.

    Args:
        messages: The conversation (checked by [check_messages][llmdocs.finetuning.chat.check_messages]).
        add_generation_prompt: Append ``<|assistant|>`` for the model to answer.

    Returns:
        The rendered conversation.

    Raises:
        TypeError: If ``messages`` is malformed, or ``add_generation_prompt`` is not a bool.
        ValueError: If ``messages`` breaks the rules of ``check_messages``, or a content contains one of
            ``CHAT_SPECIAL_TOKENS`` (a user who types ``<|end|>`` must not end a turn for the model).

    Examples:
        >>> render_chat([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True)
        '<|user|>What is 2+2?<|end|><|assistant|>'
    """
    checked = check_messages(messages)
    if not isinstance(add_generation_prompt, bool):
        raise TypeError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
    _check_contents(checked, CHAT_SPECIAL_TOKENS)
    parts = []
    for message in checked:
        parts.append(ROLE_TOKENS[message["role"]] + message["content"] + END_OF_TURN)
    if add_generation_prompt:
        parts.append(ROLE_TOKENS["assistant"])
    return "".join(parts)


def _is_hf_tokenizer(tokenizer: object) -> bool:
    return callable(getattr(tokenizer, "apply_chat_template", None))


def _check_chat_tokenizer(tokenizer: object) -> None:
    if _is_hf_tokenizer(tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no chat template (tokenizer.chat_template)")
        return
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(
            "tokenizer must be a transformers tokenizer with a chat template, or our BPETokenizer with "
            f"CHAT_SPECIAL_TOKENS, got {type(tokenizer).__name__}"
        )
    missing = [token for token in CHAT_SPECIAL_TOKENS if token not in tokenizer.special_tokens]
    if missing:
        raise ValueError(
            f"tokenizer lacks the chat special tokens {missing}: train it with special_tokens=CHAT_SPECIAL_TOKENS"
        )


def _encode(messages: list[Message], tokenizer: Any, add_generation_prompt: bool) -> list[int]:
    """Token ids of checked ``messages`` in the tokenizer's template (no checks)."""
    if _is_hf_tokenizer(tokenizer):
        encoded = tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
        )
        return [int(i) for i in encoded["input_ids"]]
    text = render_chat(messages, add_generation_prompt)
    return tokenizer.encode(text, allowed_special=set(CHAT_SPECIAL_TOKENS))


def encode_chat(
    messages: Sequence[Mapping[str, str]], tokenizer: Any, add_generation_prompt: bool = False
) -> list[int]:
    """The token ids of a conversation in the tokenizer's chat template.

    A ``transformers`` tokenizer renders it with its own template (``apply_chat_template``); our
    [BPETokenizer][llmdocs.tokenizers.bpe.BPETokenizer] with our minimal template
    ([render_chat][llmdocs.finetuning.chat.render_chat]), the markers encoded as their special ids and the contents
    as ordinary text.

    Args:
        messages: The conversation (see [check_messages][llmdocs.finetuning.chat.check_messages]).
        tokenizer: A ``transformers`` tokenizer with a chat template, or a ``BPETokenizer`` trained with
            ``special_tokens=CHAT_SPECIAL_TOKENS``.
        add_generation_prompt: End with the start of an assistant turn (a prompt to generate from).

    Returns:
        The token ids.

    Raises:
        TypeError: If ``tokenizer`` is neither kind, or ``messages`` is malformed.
        ValueError: If ``messages`` breaks the rules of ``check_messages``, a content contains one of the
            tokenizer's special tokens (``<|im_end|>``, our ``<|end|>``, ...), or the tokenizer has no chat template /
            lacks our special tokens.

    Examples:
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)  # bytes + 4 specials
        >>> tok.special_tokens
        {'<|system|>': 256, '<|user|>': 257, '<|assistant|>': 258, '<|end|>': 259}
        >>> encode_chat([{"role": "user", "content": "Hi"}], tok, add_generation_prompt=True)  # H=72, i=105
        [257, 72, 105, 259, 258]
    """
    checked = check_messages(messages)
    if not isinstance(add_generation_prompt, bool):
        raise TypeError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
    _check_chat_tokenizer(tokenizer)
    if _is_hf_tokenizer(tokenizer):  # render_chat checks ours
        _check_contents(checked, _hf_special_tokens(tokenizer))
    return _encode(checked, tokenizer, add_generation_prompt)


def _end_of_turn_id(tokenizer: Any, end_of_turn_id: int | None) -> int:
    if end_of_turn_id is not None:
        if isinstance(end_of_turn_id, bool) or not isinstance(end_of_turn_id, int) or end_of_turn_id < 0:
            raise TypeError(f"end_of_turn_id must be a token id (an int >= 0) or None, got {end_of_turn_id!r}")
        return end_of_turn_id
    if _is_hf_tokenizer(tokenizer):
        eos = getattr(tokenizer, "eos_token_id", None)
        if not isinstance(eos, int):
            raise ValueError("the tokenizer has no eos_token_id: pass end_of_turn_id, the id that ends a turn")
        return eos
    return tokenizer.special_tokens[END_OF_TURN]


def _is_prefix(prefix: list[int], ids: list[int]) -> bool:
    return len(prefix) <= len(ids) and ids[: len(prefix)] == prefix


def tokenize_conversation(
    messages: Sequence[Mapping[str, str]], tokenizer: Any, end_of_turn_id: int | None = None
) -> TokenizedChat:
    """Tokenize a conversation and mark the tokens the assistant wrote (its end-of-turn token included).

    For each assistant message i, the tokens of ``messages[:i]`` with the generation prompt and those of
    ``messages[:i + 1]`` are both token prefixes of the whole conversation; the assistant wrote the tokens
    between them, up to and including the last ``end_of_turn_id`` among them (what follows it, such as ChatML's
    newline, is template, not answer). A template for which the prefixes are not prefixes is refused.

    Args:
        messages: The conversation, with at least one assistant message (see
            [check_messages][llmdocs.finetuning.chat.check_messages]).
        tokenizer: A ``transformers`` tokenizer with a chat template, or our
            [BPETokenizer][llmdocs.tokenizers.bpe.BPETokenizer] trained with ``special_tokens=CHAT_SPECIAL_TOKENS``.
        end_of_turn_id: The token that ends an assistant turn; default the tokenizer's ``eos_token_id``
            (``<|im_end|>``, 2, for SmolLM2-Instruct), or our ``<|end|>``.

    Returns:
        ``{"input_ids": [...], "assistant_mask": [...]}``, two lists of the same length T; the mask is 1 on the
        assistant's tokens, 0 on the system and user messages and on the template's markers.

    Raises:
        TypeError: If ``tokenizer`` is neither kind, ``messages`` is malformed, or ``end_of_turn_id`` is not an id.
        ValueError: If ``messages`` breaks the rules of ``check_messages`` or has no assistant message, a content
            contains one of the tokenizer's special tokens (which would fake a turn), the template does not render
            prefixes as token prefixes, or an assistant turn holds no end-of-turn token.

    Examples:
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
        >>> chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        >>> render_chat(chat)
        '<|user|>2+2?<|end|><|assistant|>4<|end|>'
        >>> out = tokenize_conversation(chat, tok)
        >>> [tok.decode([i]) for i in out["input_ids"]]
        ['<|user|>', '2', '+', '2', '?', '<|end|>', '<|assistant|>', '4', '<|end|>']
        >>> out["assistant_mask"]
        [0, 0, 0, 0, 0, 0, 0, 1, 1]

        With SmolLM2's template (not run here: the tokenizer loads in seconds), ``<|im_end|>`` is trained on and
        the newline after it is not:

        ```python-display
        from llmdocs.models.smollm2 import smollm2_tokenizer
        tokenizer = smollm2_tokenizer()
        out = tokenize_conversation(chat, tokenizer)
        tokenizer.decode([i for i, m in zip(out["input_ids"], out["assistant_mask"]) if m])  # '4<|im_end|>'
        ```
    """
    return _tokenize_conversation(check_messages(messages), tokenizer, end_of_turn_id)


_Prefixes = dict[tuple[tuple[tuple[str, str], ...], bool], list[int]]
"""Token ids of conversation prefixes already encoded, keyed by their (role, content) pairs and the generation
prompt flag: conversations that share turns (the two sides of a preference pair) encode them once."""


def _tokenize_conversation(
    checked: list[Message], tokenizer: Any, end_of_turn_id: int | None = None, prefixes: _Prefixes | None = None
) -> TokenizedChat:
    """``tokenize_conversation`` of checked messages, reusing (and filling) ``prefixes`` if given."""
    _check_chat_tokenizer(tokenizer)
    if _is_hf_tokenizer(tokenizer):  # render_chat checks ours
        _check_contents(checked, _hf_special_tokens(tokenizer))
    eot = _end_of_turn_id(tokenizer, end_of_turn_id)
    answers = [i for i, message in enumerate(checked) if message["role"] == "assistant"]
    if not answers:
        raise ValueError("messages has no assistant message: there is nothing to train on")
    turns = tuple((message["role"], message["content"]) for message in checked)

    def encode(n: int, add_generation_prompt: bool) -> list[int]:  # the tokens of checked[:n]
        if prefixes is None:
            return _encode(checked[:n], tokenizer, add_generation_prompt)
        key = (turns[:n], add_generation_prompt)
        if key not in prefixes:
            prefixes[key] = _encode(checked[:n], tokenizer, add_generation_prompt)
        return prefixes[key]

    input_ids = _encode(checked, tokenizer, add_generation_prompt=False)
    assistant_mask = [0] * len(input_ids)
    for i in answers:
        before = encode(i, add_generation_prompt=True)  # ... + "<|im_start|>assistant\n"
        # ... + answer + "<|im_end|>\n"; for the last message, the whole conversation
        through = input_ids if i + 1 == len(checked) else encode(i + 1, add_generation_prompt=False)
        if not (_is_prefix(before, through) and _is_prefix(through, input_ids)):
            raise ValueError(
                f"the chat template does not render this conversation incrementally: the tokens of messages[:{i}] "
                f"with the generation prompt, or of messages[:{i + 1}], are not a prefix of the tokens of the whole "
                "conversation, so the assistant's tokens cannot be located"
            )
        span = through[len(before) :]
        if eot not in span:
            raise ValueError(
                f"the assistant turn messages[{i}] holds no end-of-turn token (id {eot}): pass end_of_turn_id, the "
                "id with which this template ends an assistant turn"
            )
        length = len(span) - span[::-1].index(eot)  # through the last end-of-turn token
        assistant_mask[len(before) : len(before) + length] = [1] * length
    return {"input_ids": input_ids, "assistant_mask": assistant_mask}
