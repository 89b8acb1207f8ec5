"""A generated translation task: English dates -> German or Chinese dates (Unicode CLDR formats).

The quick task of the Transformer chapter. It trains in minutes on a CPU, needs no download, and is a
real translation problem with **reordering**, which makes cross-attention maps worth looking at:

| locale | `"full"` format of 2024-03-03 | what moves |
|---|---|---|
| `en` (source) | `Sunday, March 3, 2024` | |
| `de` | `Sonntag, 3. März 2024` | day before month, words translated |
| `zh` | `2024年3月3日星期日` | year first, weekday last |

The strings come from the CLDR data in `babel` (`babel.dates.format_date`). Dates are drawn without
replacement from a range of days, so the train and held-out sets never share a date.
"""

from __future__ import annotations

import datetime as dt
import random
import re

from babel.dates import PATTERN_CHARS, format_date, tokenize_pattern

__all__ = ["WIDTHS", "check_date_format", "date_pair", "date_task_split", "make_date_pairs"]

DEFAULT_START = dt.date(1900, 1, 1)
DEFAULT_END = dt.date(2099, 12, 31)
WIDTHS = ("full", "long", "medium", "short")
"""The CLDR format widths: each locale's own pattern for a date, from the longest to the shortest."""
# The letters of date fields in a CLDR pattern (era, years, quarters, months, weeks, days, weekdays) that babel
# formats; every other ASCII letter is reserved (a time field, or unknown) and must be quoted to be literal.
_DATE_FIELDS = frozenset("GyYuQqMLwWdDFgEec")
_QUOTED = re.compile(r"'[^']*'")  # 'de', and '' for a literal quote


def check_date_format(date_format: str, argname: str = "date_format") -> None:
    """Raise a readable error unless `date_format` is a CLDR width or a CLDR date pattern that babel can apply.

    babel copies letters it does not know into its output (`"weird"` formats 2024-03-03 as `"97ir3"`: `w` is the
    week, `e` the weekday, `i` and `r` are copied), so a typo would silently become the task's text.

    Args:
        date_format: `"full"`, `"long"`, `"medium"`, `"short"`, or a pattern such as `"d MMMM y"` (literal
            letters quoted: `"d 'de' MMMM"`).
        argname: The argument's name, for the message.

    Raises:
        TypeError: If `date_format` is not a str.
        ValueError: If it is empty, has an unquoted letter that is not a date field, a field of an unsupported
            length, or no date field at all.

    Examples:
        >>> check_date_format("d.M.y")
        >>> check_date_format("weird", "source_format")
        Traceback (most recent call last):
        ...
        ValueError: source_format='weird' is neither a CLDR width (full, long, medium, short) nor a date pattern:
        'i', 'r' are not date fields (quote literal letters, as in "d 'de' MMMM")
    """
    if not isinstance(date_format, str):
        raise TypeError(f"{argname} must be a str (a CLDR width or pattern), got {type(date_format).__name__}")
    if date_format in WIDTHS:
        return
    what = f"{argname}={date_format!r} is neither a CLDR width ({', '.join(WIDTHS)}) nor a date pattern"
    if not date_format:
        raise ValueError(f"{what}: it is empty")
    letters = sorted(set(re.findall("[A-Za-z]", _QUOTED.sub("", date_format))), key=date_format.index)
    unknown = [letter for letter in letters if letter not in _DATE_FIELDS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(
            f"""{what}: {names} {"is not a date field" if len(unknown) == 1 else "are not date fields"} """
            f"""(quote literal letters, as in "d 'de' MMMM")"""
        )
    if not letters:
        raise ValueError(f"{what}: it has no date field (d, M, y, E, ...), so every date would read the same")
    for kind, value in tokenize_pattern(date_format):
        if kind == "field" and PATTERN_CHARS[value[0]] is not None and value[1] not in PATTERN_CHARS[value[0]]:
            raise ValueError(f"{what}: the field {value[0] * value[1]!r} has an unsupported length")


def date_pair(
    day: dt.date,
    target_locale: str = "de",
    source_locale: str = "en",
    source_format: str = "full",
    target_format: str = "full",
) -> tuple[str, str]:
    """One `(source, target)` pair: the same day written in two locales.

    Args:
        day: The date.
        target_locale: A CLDR locale, e.g. `"de"`, `"zh"`, `"es"`, `"fr"`, `"ja"`.
        source_locale: The source locale.
        source_format: `"full"`, `"long"`, `"medium"` or `"short"` (a CLDR width), or a CLDR pattern
            such as `"d MMMM y"`.
        target_format: Likewise for the target.

    Returns:
        The two strings.

    Raises:
        TypeError: If `day` is not a `datetime.date`.
        ValueError: If a format is neither a CLDR width nor a date pattern (see
            [`check_date_format`][llmdocs.data.dates.check_date_format]).

    Examples:
        >>> date_pair(dt.date(2024, 3, 3))
        ('Sunday, March 3, 2024', 'Sonntag, 3. März 2024')
        >>> date_pair(dt.date(2024, 3, 3), "zh")
        ('Sunday, March 3, 2024', '2024年3月3日星期日')
    """
    if not isinstance(day, dt.date):
        raise TypeError(f"day must be a datetime.date such as datetime.date(2024, 3, 5), got {type(day).__name__}")
    check_date_format(source_format, "source_format")
    check_date_format(target_format, "target_format")
    source = format_date(day, format=source_format, locale=source_locale)
    target = format_date(day, format=target_format, locale=target_locale)
    return source, target


def make_date_pairs(
    n: int,
    seed: int = 0,
    target_locale: str = "de",
    source_locale: str = "en",
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    source_format: str = "full",
    target_format: str = "full",
) -> list[tuple[str, str]]:
    """`n` pairs of distinct days drawn uniformly from `[start, end]`; the same seed gives the same pairs.

    Args:
        n: Number of pairs.
        seed: Seed of the draw.
        target_locale: Target CLDR locale.
        source_locale: Source CLDR locale.
        start: First possible day.
        end: Last possible day (inclusive).
        source_format: CLDR width or pattern of the source.
        target_format: CLDR width or pattern of the target.

    Returns:
        The pairs, in draw order.

    Raises:
        ValueError: If `n < 1` or larger than the number of days in the range, or a format is not a CLDR width
            or date pattern.

    Examples:
        >>> make_date_pairs(2, seed=1) == make_date_pairs(2, seed=1)
        True
        >>> len(make_date_pairs(3, target_locale="zh"))
        3
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of pairs), got {n!r}")
    check_date_format(source_format, "source_format")
    check_date_format(target_format, "target_format")
    days = _draw_days(n, seed, start, end)
    return [date_pair(d, target_locale, source_locale, source_format, target_format) for d in days]


def date_task_split(
    n_train: int = 20_000,
    n_test: int = 1_000,
    seed: int = 0,
    target_locale: str = "de",
    source_locale: str = "en",
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    source_format: str = "full",
    target_format: str = "full",
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Train and held-out pairs over *disjoint* sets of days.

    Args:
        n_train: Training pairs.
        n_test: Held-out pairs.
        seed: Seed of the draw (the same seed gives the same split).
        target_locale: Target CLDR locale.
        source_locale: Source CLDR locale.
        start: First possible day.
        end: Last possible day (inclusive).
        source_format: CLDR width or pattern of the source.
        target_format: CLDR width or pattern of the target.

    Returns:
        `(train, test)`; no date (hence no source string of a full format) is in both.

    Raises:
        ValueError: If `n_train` or `n_test` is not a positive int, the range has fewer than
            `n_train + n_test` days, or a format is not a CLDR width or date pattern.

    Examples:
        >>> train, test = date_task_split(n_train=50, n_test=10, seed=0, target_locale="zh")
        >>> len(train), len(test), set(train) & set(test)
        (50, 10, set())
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    check_date_format(source_format, "source_format")
    check_date_format(target_format, "target_format")
    days = _draw_days(n_train + n_test, seed, start, end)
    pairs = [date_pair(d, target_locale, source_locale, source_format, target_format) for d in days]
    return pairs[:n_train], pairs[n_train:]


def _draw_days(n: int, seed: int, start: dt.date, end: dt.date) -> list[dt.date]:
    """`n` distinct days from `[start, end]`, deterministic in `seed`."""
    n_days = (end - start).days + 1
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > n_days:
        raise ValueError(f"cannot draw {n} distinct days from {start}..{end} ({n_days} days)")
    offsets = random.Random(seed).sample(range(n_days), n)
    return [start + dt.timedelta(days=k) for k in offsets]
