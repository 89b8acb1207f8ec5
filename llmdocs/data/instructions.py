"""Instruction examples as conversations: the message record chat templates take, and the Alpaca layout.

An instruction data set stores `instruction`, an optional `input` and the reference `output` (Taori et al., 2023,
the Alpaca format that LLaMA-Factory's demo sets and the generated [iso_dates][llmdocs.data.iso_dates] task use).
Chat models are trained on conversations instead: a list of messages `{"role": ..., "content": ...}` that the
tokenizer's chat template renders ([chat][llmdocs.finetuning.chat]). This module is the bridge: the user turn is
`instruction + "\\n" + input` (LLaMA-Factory's rule), the assistant turn is `output`.
"""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = ["Message", "alpaca_prompt", "instruction_messages"]


class Message(TypedDict):
    """One chat turn, in the format chat templates take: `{"role": "user", "content": "Hi"}`."""

    role: Literal["system", "user", "assistant"]
    content: str


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The user turn of an Alpaca record, by LLaMA-Factory's rule: `instruction + "\\n" + input`.

    Args:
        instruction: The task.
        input: Extra context; when empty the prompt is the instruction alone.

    Returns:
        The user message.

    Examples:
        >>> alpaca_prompt("Translate to French.", "cheese"), alpaca_prompt("Name a colour.")
        ('Translate to French.\\ncheese', 'Name a colour.')
    """
    return "\n".join(part for part in (instruction, input) if part)


def instruction_messages(prompt: str, output: str, system: str | None = None) -> list[Message]:
    """An instruction example as a conversation: an optional system turn, the user's `prompt`, the `output`.

    Args:
        prompt: The user turn (see `alpaca_prompt`).
        output: The reference answer, the assistant turn.
        system: An optional system message; None or `""` leaves it out (the chat template may add its default).

    Returns:
        Two or three messages.

    Examples:
        >>> instruction_messages("Add the numbers.\\n2 and 3", "5")
        [{'role': 'user', 'content': 'Add the numbers.\\n2 and 3'}, {'role': 'assistant', 'content': '5'}]
    """
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
