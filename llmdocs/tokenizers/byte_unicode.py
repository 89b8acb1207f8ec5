"""GPT-2's reversible map from the 256 byte values to 256 printable unicode characters.

Byte-level BPE works on bytes, but the files that store a vocabulary (`vocab.json`, `merges.txt`) are text, and
merges are written as two tokens separated by a space. GPT-2 therefore shows every byte as a printable character:
the 188 bytes that already print as themselves (`!` to `~`, `¡` to `¬`, `®` to `ÿ`) keep their Latin-1 character,
and the other 68 (control characters, the space, `\\x7f`-`\\xa0`, the soft hyphen) are shifted to `Ā` (U+0100)
and onwards, in byte order. That is why GPT-2 tokens that start with a space print as `Ġthe`: the space (byte 32)
is the 33rd shifted byte, U+0100 + 32 = U+0120 `Ġ`; a newline (byte 10) becomes `Ċ`.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), section 2.2;
    `bytes_to_unicode` in openai/gpt-2 `src/encoder.py`.
"""

from __future__ import annotations

from functools import cache

__all__ = ["byte_decoder", "bytes_to_unicode", "token_bytes", "token_str"]


@cache
def bytes_to_unicode() -> dict[int, str]:
    """The 256-entry map byte value -> printable character used by GPT-2's `vocab.json` and `merges.txt`.

    Returns:
        `{0: 'Ā', 1: 'ā', ..., 32: 'Ġ', 33: '!', ..., 255: 'ÿ'}`, a bijection onto 256 distinct characters.

    Examples:
        >>> table = bytes_to_unicode()
        >>> len(set(table.values())), table[ord("a")], table[ord(" ")], table[ord("\\n")]
        (256, 'a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:  # not printable: move it past Latin-1, keeping byte order
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


@cache
def byte_decoder() -> dict[str, int]:
    """The inverse of `bytes_to_unicode`: printable character -> byte value.

    Examples:
        >>> byte_decoder()["Ġ"]
        32
    """
    return {char: b for b, char in bytes_to_unicode().items()}


def token_str(token: bytes) -> str:
    """A token's bytes written with GPT-2's printable characters, as in `vocab.json`.

    Args:
        token: The token's bytes.

    Returns:
        One character per byte.

    Raises:
        TypeError: If `token` is not bytes (a `str` must be encoded first).

    Examples:
        >>> token_str(" the".encode())
        'Ġthe'
        >>> token_str("é".encode())  # two bytes, 0xC3 0xA9
        'Ã©'
    """
    if not isinstance(token, bytes | bytearray):
        raise TypeError(f"token must be bytes, got {type(token).__name__} {token!r} (use text.encode('utf-8'))")
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def token_bytes(text: str) -> bytes:
    """The bytes of a token written with GPT-2's printable characters (inverse of `token_str`).

    Args:
        text: A token as it appears in `vocab.json` or `merges.txt`.

    Returns:
        The token's bytes.

    Raises:
        ValueError: If `text` has a character outside the 256 of `bytes_to_unicode`.
        TypeError: If `text` is not a string.

    Examples:
        >>> token_bytes("Ġthe")
        b' the'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str (a token of vocab.json), got {type(text).__name__} {text!r}")
    decoder = byte_decoder()
    try:
        return bytes(decoder[char] for char in text)
    except KeyError as err:
        raise ValueError(
            f"{text!r} is not a byte-level token: {err.args[0]!r} is not one of the 256 byte characters"
        ) from None
