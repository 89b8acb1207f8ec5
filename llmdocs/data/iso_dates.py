"""A verifiable instruction task for SFT: write a date given in many real surface forms as ISO 8601 (`YYYY-MM-DD`).

Did supervised fine-tuning work? On open-ended instructions that is a matter of taste; here it is a number.
Each example asks, in one of several phrasings, for the ISO 8601 form of a date written the way people and
programs write dates (CLDR formats from `babel`, in English, German, French and Chinese), and the answer is
exactly one string, so **exact match** scores it. What the model must learn is small: where the day, month and
year sit in each form, and the month-name table (`March`, `Mar`, `März`, `mars`, `3月`) — within reach of a 135M
model and a few CPU-minutes of LoRA.

| form | 2024-03-05 written | from |
|---|---|---|
| `en_full` | `Tuesday, March 5, 2024` | CLDR `en` full |
| `en_long` | `March 5, 2024` | CLDR `en` long |
| `en_medium` | `Mar 5, 2024` | CLDR `en` medium |
| `en_numeric` | `3/5/2024` | `en` pattern `M/d/y` (US order; two-digit years are ambiguous, so never `3/5/24`) |
| `en_ordinal` | `March 5th, 2024` | written out (CLDR dates have no ordinals) |
| `en_gb_long` | `5 March 2024` | CLDR `en_GB` long: **test only** by default |
| `de_full` | `Dienstag, 5. März 2024` | CLDR `de` full |
| `de_long` | `5. März 2024` | CLDR `de` long |
| `de_numeric` | `05.03.2024` | CLDR `de` medium |
| `fr_full` | `mardi 5 mars 2024` | CLDR `fr` full |
| `fr_long` | `5 mars 2024` | CLDR `fr` long |
| `zh_full` | `2024年3月5日星期二` | CLDR `zh` full |
| `zh_long` | `2024年3月5日` | CLDR `zh` long |
| `zh_numeric` | `2024/3/5` | CLDR `zh` short |

No form is ambiguous: the only numeric forms are the US slash form (month first), the German dot form (day
first) and the Chinese year-first form; `en_GB`'s `05/03/2024` is left out because it reads as May 3 in the US.

**Splits by value and by template.** The dates of the three splits are disjoint (drawn without replacement from
1900-01-01 to 2099-12-31), and so are their instruction phrasings (`TEMPLATES`): 10 for training, 3 for
validation, 4 for test. The test split also uses a surface form training never shows (`en_gb_long`: English
month names in the day-first order of the German and French forms), so it measures generalisation to new
phrasings, new dates and a new but composable form; validation uses its own phrasings and dates with the training
forms, for choosing a checkpoint. The test dates are drawn first, so changing `n_train` never changes the test
set.

**Deterministic across machines.** Only `random.Random` with string seeds (hashed with SHA-512, not Python's
salted `hash`) and babel with explicit locales: no dependence on the machine's locale, time zone or today's
date. The ISO answers never change; the surface strings are the CLDR data of the installed babel (checked with
babel 2.19).

**Scoring.** [`exact_match`][llmdocs.data.iso_dates.exact_match] (strip surrounding whitespace, nothing else),
[`format_ok`][llmdocs.data.iso_dates.format_ok] (a real calendar date written `YYYY-MM-DD`) and
[`reward`][llmdocs.data.iso_dates.reward], their weighted sum, for the reinforcement-learning chapter.

References:
    ISO 8601-1:2019, "Date and time: representations for information interchange", section 5.2.2 (calendar
    date, extended format); Unicode CLDR, UTS #35 part 4 "Dates" (the format patterns babel applies).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from typing import Literal

from babel.dates import format_date, get_month_names

from llmdocs.data.instructions import Message, alpaca_prompt, instruction_messages

__all__ = [
    "DATE_FORMS",
    "EXACT_WEIGHT",
    "FORMAT_WEIGHT",
    "TEMPLATES",
    "TEST_ONLY_FORMS",
    "DateExample",
    "english_ordinal",
    "exact_match",
    "format_ok",
    "make_iso_date_task",
    "reward",
    "write_date",
]

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")

DATE_FORMS: dict[str, tuple[str, str]] = {
    "en_full": ("en", "full"),
    "en_long": ("en", "long"),
    "en_medium": ("en", "medium"),
    "en_numeric": ("en", "M/d/y"),
    "en_ordinal": ("en", "ordinal"),  # not a CLDR format: see english_ordinal
    "en_gb_long": ("en_GB", "long"),
    "de_full": ("de", "full"),
    "de_long": ("de", "long"),
    "de_numeric": ("de", "medium"),
    "fr_full": ("fr", "full"),
    "fr_long": ("fr", "long"),
    "zh_full": ("zh", "full"),
    "zh_long": ("zh", "long"),
    "zh_numeric": ("zh", "short"),
}
"""Surface form name -> (CLDR locale, CLDR width or pattern) given to `babel.dates.format_date`."""
TEST_ONLY_FORMS: tuple[str, ...] = ("en_gb_long",)
"""The forms that only the test split uses (by default)."""

TEMPLATES: dict[Split, tuple[str, ...]] = {
    "train": (
        "Convert this date to ISO 8601 format.",
        "Rewrite the date below as YYYY-MM-DD.",
        "What is this date in ISO 8601 notation?",
        "Normalize the following date to the form YYYY-MM-DD.",
        "Give the ISO 8601 form of this date.",
        "Express the date below in ISO format (year-month-day).",
        "Turn this date into a machine-readable ISO date.",
        "Write the following date as an ISO 8601 calendar date.",
        "Format this date as YYYY-MM-DD.",
        "Please convert the date to ISO 8601.",
    ),
    "validation": (
        "Change the date below into ISO 8601 (YYYY-MM-DD).",
        "I need this date in ISO 8601 form.",
        "Standardize this date to YYYY-MM-DD.",
    ),
    "test": (
        "Output the ISO 8601 version of the following date.",
        "Can you write this date in the YYYY-MM-DD format?",
        "Reformat the date into ISO 8601.",
        "Translate this date to the international standard format YYYY-MM-DD.",
    ),
}
"""The instruction phrasings of each split; no phrasing is in two splits."""

EXACT_WEIGHT = 0.8
"""The share of [`reward`][llmdocs.data.iso_dates.reward] for the right date."""
FORMAT_WEIGHT = 0.2
"""The share of [`reward`][llmdocs.data.iso_dates.reward] for a well-formed ISO date, right or wrong."""

DEFAULT_START = dt.date(1900, 1, 1)
DEFAULT_END = dt.date(2099, 12, 31)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")  # ASCII digits only: str.isdigit would accept '２' or '٣'


@dataclass(frozen=True)
class DateExample:
    """One example of the task, in the Alpaca layout (`instruction`, `input`, `output`) plus its ground truth.

    Attributes:
        instruction: The request, one of `TEMPLATES[split]`.
        input: The date in a surface form, e.g. `"March 5th, 2024"`.
        output: The answer, `date.isoformat()`, e.g. `"2024-03-05"`.
        date: The date itself (the ground truth the strings were made from).
        form: The surface form's name, a key of `DATE_FORMS`.
        template: The index of `instruction` in `TEMPLATES[split]`.
    """

    instruction: str
    input: str
    output: str
    date: dt.date
    form: str
    template: int

    @property
    def prompt(self) -> str:
        """The user turn: `instruction + "\\n" + input`."""
        return alpaca_prompt(self.instruction, self.input)

    def messages(self, system: str | None = None) -> list[Message]:
        """The example as a conversation: an optional system turn, the user turn, the answer as assistant turn.

        Examples:
            >>> example = make_iso_date_task(1, 0, 0)["train"][0]
            >>> [m["role"] for m in example.messages(system="Answer with the date only.")]
            ['system', 'user', 'assistant']
        """
        return instruction_messages(self.prompt, self.output, system)


def english_ordinal(n: int) -> str:
    """`n` with its English ordinal suffix: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 23rd.

    Examples:
        >>> [english_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)]
        ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '23rd', '31st']
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def write_date(day: dt.date, form: str) -> str:
    """The date written in one surface form of `DATE_FORMS`.

    Args:
        day: The date.
        form: A key of `DATE_FORMS`, e.g. `"de_long"`.

    Returns:
        The string, e.g. `"5. März 2024"`.

    Raises:
        TypeError: If `day` is not a `datetime.date` (a `datetime` is refused too: its time would be dropped).
        ValueError: If `form` is not a key of `DATE_FORMS`.

    Examples:
        >>> day = dt.date(2024, 3, 5)
        >>> write_date(day, "en_ordinal"), write_date(day, "de_long"), write_date(day, "zh_full")
        ('March 5th, 2024', '5. März 2024', '2024年3月5日星期二')
    """
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise TypeError(f"day must be a datetime.date such as datetime.date(2024, 3, 5), got {type(day).__name__}")
    if form not in DATE_FORMS:
        raise ValueError(f"form must be one of {', '.join(DATE_FORMS)}; got {form!r}")
    locale, pattern = DATE_FORMS[form]
    if pattern == "ordinal":
        month = get_month_names("wide", locale=locale)[day.month]
        return f"{month} {english_ordinal(day.day)}, {day.year}"
    return format_date(day, format=pattern, locale=locale)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (a number of examples), got {value!r}")
    return value


def make_iso_date_task(
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 500,
    seed: int = 0,
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    test_only_forms: tuple[str, ...] = TEST_ONLY_FORMS,
) -> dict[Split, list[DateExample]]:
    """Generate the three splits of the date-normalisation task.

    Dates: one shuffle of all days in `[start, end]`; the test split takes the first `n_test`, validation the
    next `n_validation`, train the next `n_train`, so no date is in two splits and the test set does not depend
    on the other sizes. Each example then draws its phrasing from its split's `TEMPLATES` and its surface form
    from the forms its split may use (train and validation: all but `test_only_forms`; test: all).

    Args:
        n_train: Training examples.
        n_validation: Validation examples.
        n_test: Test examples.
        seed: Seed of every draw; the same seed gives the same examples on every machine.
        start: First possible date (year >= 1000, so every year has four digits).
        end: Last possible date (inclusive).
        test_only_forms: Surface forms kept out of train and validation; `()` to use every form everywhere.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}` lists of `DateExample`.

    Raises:
        ValueError: If a size is not a non-negative int, `seed` is not an int, the range is reversed, has a year
            below 1000 or fewer days than `n_train + n_validation + n_test`, a name in `test_only_forms` is not a
            form, or it holds every form.
        TypeError: If `start` or `end` is not a `datetime.date`.

    Examples:
        >>> task = make_iso_date_task(n_train=20, n_validation=5, n_test=5, seed=0)
        >>> {name: len(split) for name, split in task.items()}
        {'train': 20, 'validation': 5, 'test': 5}
        >>> example = task["test"][0]
        >>> print(example.prompt); print(example.output)
        Translate this date to the international standard format YYYY-MM-DD.
        2082年5月19日星期二
        2082-05-19
        >>> all(e.output == e.date.isoformat() and e.input == write_date(e.date, e.form) for e in task["train"])
        True
    """
    sizes = {"train": _count("n_train", n_train), "validation": _count("n_validation", n_validation)}
    sizes["test"] = _count("n_test", n_test)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise TypeError(f"{name} must be a datetime.date, got {type(value).__name__}")
    if start > end or start.year < 1000:
        raise ValueError(f"need 1000-01-01 <= start <= end, got start={start}, end={end}")
    unknown = [form for form in test_only_forms if form not in DATE_FORMS]
    if unknown:
        raise ValueError(f"test_only_forms has unknown forms {unknown}; the forms are {', '.join(DATE_FORMS)}")
    seen_forms = [form for form in DATE_FORMS if form not in test_only_forms]
    if not seen_forms:
        raise ValueError("test_only_forms holds every form: training would see no date at all")
    n_days, total = (end - start).days + 1, sum(sizes.values())
    if total > n_days:
        raise ValueError(f"{total} examples need {total} distinct dates, but {start}..{end} has {n_days} days")

    # one permutation of the days, cut test | validation | train (str seeds are hashed with SHA-512: portable)
    offsets = list(range(n_days))
    random.Random(f"iso-dates:{seed}:dates").shuffle(offsets)
    bounds = {"test": (0, n_test), "validation": (n_test, n_test + n_validation)}
    bounds["train"] = (n_test + n_validation, total)
    task: dict[Split, list[DateExample]] = {}
    for split in SPLITS:
        rng = random.Random(f"iso-dates:{seed}:{split}")
        forms = list(DATE_FORMS) if split == "test" else seen_forms
        first, last = bounds[split]
        examples = []
        for offset in offsets[first:last]:
            day = start + dt.timedelta(days=offset)
            template, form = rng.randrange(len(TEMPLATES[split])), rng.choice(forms)
            text = write_date(day, form)
            examples.append(DateExample(TEMPLATES[split][template], text, day.isoformat(), day, form, template))
        task[split] = examples
    return task


def exact_match(prediction: str, reference: str) -> bool:
    """Whether the prediction is the reference, up to whitespace at either end (`str.strip`); nothing else.

    Case, inner spaces, a trailing period, a missing zero (`2024-3-5`) all count as wrong: the task asks for
    exactly `YYYY-MM-DD`.

    Raises:
        TypeError: If either argument is not a str.

    Examples:
        >>> exact_match(" 2024-03-05\\n", "2024-03-05"), exact_match("2024-03-05.", "2024-03-05")
        (True, False)
    """
    for name, value in (("prediction", prediction), ("reference", reference)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return prediction.strip() == reference.strip()


def format_ok(prediction: str) -> bool:
    """Whether the prediction (stripped) is a real calendar date written `YYYY-MM-DD` with ASCII digits.

    Examples:
        >>> [format_ok(s) for s in ("2024-02-29", "2023-02-29", "2024-3-5", "20240305", " 1999-12-31 ")]
        [True, False, False, False, True]
    """
    if not isinstance(prediction, str):
        raise TypeError(f"prediction must be a str, got {type(prediction).__name__}")
    text = prediction.strip()
    if not _ISO.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:  # month 13, February 30, ...
        return False
    return True


def reward(
    prediction: str, reference: str, exact_weight: float = EXACT_WEIGHT, format_weight: float = FORMAT_WEIGHT
) -> float:
    """Exact match plus format, as one number in [0, 1]:

        reward = exact_weight * exact_match(prediction, reference) + format_weight * format_ok(prediction)

    With the default weights 0.8 and 0.2: the right date scores 1.0, a well-formed wrong date 0.2 (the format is
    learnt before the content, and a policy gets a gradient toward it), anything else 0.0.

    Args:
        prediction: The model's answer.
        reference: The expected `YYYY-MM-DD`.
        exact_weight: Weight of the exact match, >= 0.
        format_weight: Weight of the format, >= 0.

    Returns:
        The reward.

    Raises:
        TypeError: If `prediction` or `reference` is not a str, or a weight is not a number.
        ValueError: If a weight is negative or NaN.

    Examples:
        >>> reward("2024-03-05", "2024-03-05"), reward("2024-03-06", "2024-03-05"), reward("March 5", "2024-03-05")
        (1.0, 0.2, 0.0)
    """
    for name, weight in (("exact_weight", exact_weight), ("format_weight", format_weight)):
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise TypeError(f"{name} must be a number, got {type(weight).__name__}")
        if not weight >= 0:  # NaN too
            raise ValueError(f"{name} must be >= 0, got {weight!r}")
    return exact_weight * exact_match(prediction, reference) + format_weight * format_ok(prediction)
