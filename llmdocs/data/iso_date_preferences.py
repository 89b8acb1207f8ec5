"""Preference pairs and verifiable-reward prompts from the SFT chapter's date task, for reward models, PPO, DPO, GRPO.

The [iso_dates][llmdocs.data.iso_dates] task (a date in some written form -> `YYYY-MM-DD`) has one right answer
per prompt, so preferences need no annotator: the **chosen** answer is the ISO date, the **rejected** one a
realistic mistake of a named kind. A reward model trained on the pairs (Bradley-Terry) or a policy trained on
them directly (DPO) can then be scored per kind of mistake, and [`reward`][llmdocs.data.iso_dates.reward] itself
is the verifiable reward of PPO and GRPO. For 5 March 2024, written `March 5th, 2024`:

| kind | the mistake | rejected answers | reward |
|---|---|---|---|
| `day_month_swapped` | day and month exchanged (day 1..12, not the month) | `2024-05-03` | 0.2 |
| `off_by_one_day` | the day before or after | `2024-03-04`, `2024-03-06` | 0.2 |
| `wrong_year` | century slip, `19xx` <-> `20xx` (+100 before 2000, -100 from 2000) | `1924-03-05` | 0.2 |
| `wrong_month` | the month before or after, same day (if it exists; no wrap) | `2024-02-05`, `2024-04-05` | 0.2 |
| `not_iso` | the input echoed, US `M/D/YYYY`, or `YYYY/MM/DD` | `March 5th, 2024`, `3/5/2024`, `2024/03/05` | 0.0 |
| `unpadded` | no leading zeros (month or day below 10) | `2024-3-5` | 0.0 |
| `with_words` | the right date in a sentence | `The date is 2024-03-05.`, ... | 0.0 |

The chosen answer scores 1.0, every rejected one strictly less:
[`date_mistakes`][llmdocs.data.iso_date_preferences.date_mistakes] checks it for every answer it makes. The
rejected answers (and their best reward) for the date above:

    >>> for kind, answers in date_mistakes(dt.date(2024, 3, 5), "March 5th, 2024").items():
    ...     print(f"{kind:17}", max(reward(a, "2024-03-05") for a in answers), " | ".join(answers))
    day_month_swapped 0.2 2024-05-03
    off_by_one_day    0.2 2024-03-04 | 2024-03-06
    wrong_year        0.2 1924-03-05
    wrong_month       0.2 2024-02-05 | 2024-04-05
    not_iso           0.0 March 5th, 2024 | 3/5/2024 | 2024/03/05
    unpadded          0.0 2024-3-5
    with_words        0.0 The date is 2024-03-05. | 2024-03-05 (ISO 8601) | Sure! In ISO 8601 format: 2024-03-05

**Same prompts as SFT.** [`make_date_preference_pairs`][llmdocs.data.iso_date_preferences.make_date_preference_pairs]
builds its splits with `make_iso_date_task`, with the defaults of `examples/sft.py` (2,000 / 200 / 500, seed 0):
the test prompts are the SFT chapter's test prompts, and no test date or phrasing is in the training pairs. The
prompt of a pair is `DateExample.messages(system)[:-1]`, the turns SFT trained on minus the answer. The shipped
adapter `smollm2-iso-dates-lora` was trained with **no system message** (`examples/sft.py` uses
`e.messages()`), so SmolLM2's chat template put in its default one ("You are a helpful AI assistant named
SmolLM, trained by Hugging Face"); the default `system=None` gives exactly those prompts.

**One code path for generated and real pairs.** A pair is a
[`PreferencePair`][llmdocs.data.llamafactory.PreferencePair], the record `load_dpo_pairs` returns for
LLaMA-Factory's `dpo_en_demo`, wrapped with its kind and its `DateExample` in a `DatePreferencePair`. Each kind is
drawn uniformly among those that apply to the date (with a string-seeded `random.Random`, as `iso_dates` draws),
then one of its answers, so the kinds that often do not apply are rarer: `day_month_swapped` applies to 36% of
the dates and `unpadded` to 82%, and with the defaults they make 31 and 68 of the 500 test pairs, the other kinds
75 to 86 each (`kinds=("day_month_swapped",)` makes pairs of that kind alone).

References:
    Bradley and Terry, "Rank Analysis of Incomplete Block Designs: I. The Method of Paired Comparisons",
    Biometrika 39, 1952 (the preference model); Ouyang et al., "Training language models to follow instructions
    with human feedback", NeurIPS 2022 (reward models from comparisons, PPO); Rafailov et al., "Direct Preference
    Optimization: Your Language Model is Secretly a Reward Model", NeurIPS 2023 (training on the pairs directly);
    Shao et al., "DeepSeekMath", 2024 (GRPO); Lambert et al., "Tulu 3", 2024 (reinforcement learning with
    verifiable rewards).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmdocs.data.instructions import Message
from llmdocs.data.iso_dates import SPLITS, DateExample, Split, make_iso_date_task, reward
from llmdocs.data.llamafactory import PreferencePair

__all__ = [
    "MISTAKE_KINDS",
    "WITH_WORDS",
    "DatePreferencePair",
    "date_mistakes",
    "date_prompts",
    "date_reward_fn",
    "make_date_preference_pairs",
]

MISTAKE_KINDS: dict[str, str] = {
    "day_month_swapped": "day and month exchanged (only when the day is 1..12 and not the month)",
    "off_by_one_day": "the day before or after",
    "wrong_year": "the century slipped: +100 years before 2000, -100 from 2000 (only when the date exists)",
    "wrong_month": "the month before or after, same day (when the day exists there; no wrap-around)",
    "not_iso": "no ISO form at all: the input echoed, US M/D/YYYY, or YYYY/MM/DD",
    "unpadded": "no leading zeros (only when the month or day is below 10)",
    "with_words": "the right date wrapped in words",
}
"""Kind of mistake -> what a rejected answer of that kind is; the default `kinds` of the pairs, in this order."""
WITH_WORDS: tuple[str, ...] = ("The date is {iso}.", "{iso} (ISO 8601)", "Sure! In ISO 8601 format: {iso}")
"""The sentences of the `with_words` kind; `{iso}` is the right answer."""


@dataclass(frozen=True)
class DatePreferencePair:
    """One generated preference pair, with what it was made from.

    Attributes:
        pair: The pair: `prompt` the SFT chat turns without the answer, `chosen` the ISO date, `rejected` a mistake.
        kind: The kind of mistake `rejected` is, a key of `MISTAKE_KINDS`.
        example: The task example (its `date`, surface `form`, `template`).

    Examples:
        >>> first = make_date_preference_pairs(2, 0, 0)["train"][0]
        >>> first.pair.chosen == first.example.output, first.kind in MISTAKE_KINDS
        (True, True)
    """

    pair: PreferencePair
    kind: str
    example: DateExample


def _date(year: int, month: int, day: int) -> dt.date | None:
    """The date, or None if it does not exist (February 30, month 0, year 10000)."""
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _shifted(day: dt.date, days: int) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:  # past 9999-12-31 or before 0001-01-01
        return None


def date_mistakes(day: dt.date, written: str | None = None) -> dict[str, tuple[str, ...]]:
    """Every rejected answer of every kind in `MISTAKE_KINDS` for one date (an empty tuple: the kind does not apply).

    Each answer differs from `day.isoformat()` and scores a strictly lower
    [`reward`][llmdocs.data.iso_dates.reward] (1.0 for the right date; 0.2 for a real but wrong `YYYY-MM-DD`;
    0.0 otherwise); this is checked on every call.

    Args:
        day: The right date.
        written: The date as the prompt shows it (`DateExample.input`): `not_iso` then includes it, echoed.

    Returns:
        `kind -> answers`, in the order of `MISTAKE_KINDS`, each tuple without repeats.

    Raises:
        TypeError: If `day` is not a `datetime.date` (a `datetime` is refused too), or `written` is not a str or None.

    Examples:
        >>> date_mistakes(dt.date(2024, 1, 31))["wrong_month"], date_mistakes(dt.date(2024, 1, 31))["unpadded"]
        ((), ('2024-1-31',))
        >>> date_mistakes(dt.date(2000, 2, 29))["wrong_year"]  # 1900 was no leap year
        ()
        >>> date_mistakes(dt.date(2024, 3, 5), "05.03.2024")["not_iso"]
        ('05.03.2024', '3/5/2024', '2024/03/05')
    """
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise TypeError(f"day must be a datetime.date such as datetime.date(2024, 3, 5), got {type(day).__name__}")
    if written is not None and not isinstance(written, str):
        raise TypeError(f"written must be a str (the date as the prompt shows) or None, got {type(written).__name__}")
    iso, (y, m, d) = day.isoformat(), (day.year, day.month, day.day)
    swapped = _date(y, d, m) if d != m else None  # a day-first reading of a month-first date, or the reverse
    century = _date(y + 100 if y < 2000 else y - 100, m, d)  # 29 February 2000 has no 1900 twin
    candidates: dict[str, list[dt.date | None] | list[str]] = {
        "day_month_swapped": [swapped],
        "off_by_one_day": [_shifted(day, -1), _shifted(day, 1)],
        "wrong_year": [century],
        "wrong_month": [_date(y, m - 1, d), _date(y, m + 1, d)],
        "not_iso": [*([written] if written is not None else []), f"{m}/{d}/{y}", f"{y:04d}/{m:02d}/{d:02d}"],
        "unpadded": [f"{y}-{m}-{d}"],
        "with_words": [sentence.format(iso=iso) for sentence in WITH_WORDS],
    }
    best = reward(iso, iso)
    mistakes: dict[str, tuple[str, ...]] = {}
    for kind, values in candidates.items():
        answers = [v.isoformat() if isinstance(v, dt.date) else v for v in values if v is not None]
        answers = list(dict.fromkeys(a for a in answers if a.strip() != iso))  # unique, never the right answer
        for answer in answers:
            if not reward(answer, iso) < best:  # a bug of this module, not of the caller
                raise AssertionError(f"{kind} answer {answer!r} for {iso} scores {reward(answer, iso)}, not < {best}")
        mistakes[kind] = tuple(answers)
    return mistakes


def _check_kinds(kinds: object) -> tuple[str, ...]:
    if isinstance(kinds, str) or not isinstance(kinds, Sequence):
        raise TypeError(f"kinds must be a tuple of kind names such as ('off_by_one_day',), got {kinds!r}")
    unknown = [kind for kind in kinds if kind not in MISTAKE_KINDS]
    if unknown:
        raise ValueError(f"kinds has unknown kinds {unknown}; the kinds are {', '.join(MISTAKE_KINDS)}")
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be non-empty and without repeats, got {tuple(kinds)}")
    return tuple(kinds)


def _check_system(system: object) -> None:
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system must be a str or None (no system turn), got {type(system).__name__}")


def make_date_preference_pairs(
    n_train: int = 2000,
    n_validation: int = 200,
    n_test: int = 500,
    kinds: Sequence[str] = tuple(MISTAKE_KINDS),
    seed: int = 0,
    system: str | None = None,
) -> dict[Split, list[DatePreferencePair]]:
    """Preference pairs on the splits of `make_iso_date_task(n_train, n_validation, n_test, seed=seed)`.

    For each example: prompt = `example.messages(system)[:-1]`, chosen = `example.output`, and rejected = one
    answer of [`date_mistakes`][llmdocs.data.iso_date_preferences.date_mistakes], its kind drawn uniformly among
    the `kinds` that apply to the date, then the answer uniformly among that kind's.

    Args:
        n_train: Training examples (the SFT default: 2,000).
        n_validation: Validation examples.
        n_test: Test examples; the test split does not depend on the other sizes.
        kinds: The kinds of mistakes to draw from, keys of `MISTAKE_KINDS`.
        seed: Seed of the task and of the draws; the same seed gives the same pairs on every machine.
        system: A system message for every prompt; None (the SFT chapter's choice) leaves it to the chat template.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}` lists of `DatePreferencePair`, in the task's order.
        With the default kinds every example has a pair; an example to which none of `kinds` applies (only
        possible with the conditional kinds alone) is left out.

    Raises:
        TypeError: If `kinds` is not a sequence of names (a single str is refused), or `system` not a str or None.
        ValueError: If a kind is unknown, `kinds` is empty or repeats one, or for the sizes and seed of
            [`make_iso_date_task`][llmdocs.data.iso_dates.make_iso_date_task].

    Examples:
        >>> pairs = make_date_preference_pairs(n_train=8, n_validation=2, n_test=2, seed=0)
        >>> {name: len(split) for name, split in pairs.items()}
        {'train': 8, 'validation': 2, 'test': 2}
        >>> first = pairs["test"][0]
        >>> print(first.pair.prompt[-1]["content"])
        Translate this date to the international standard format YYYY-MM-DD.
        2082年5月19日星期二
        >>> first.pair.chosen, first.pair.rejected, first.kind
        ('2082-05-19', '2082/05/19', 'not_iso')
        >>> swaps = make_date_preference_pairs(4, 0, 0, kinds=("day_month_swapped",))["train"]  # 1 of 4 applies
        >>> [(p.example.output, p.pair.rejected) for p in swaps]
        [('1940-12-01', '1940-01-12')]
    """
    kinds = _check_kinds(kinds)
    _check_system(system)
    task = make_iso_date_task(n_train, n_validation, n_test, seed=seed)
    pairs: dict[Split, list[DatePreferencePair]] = {}
    for split in SPLITS:
        rng = random.Random(f"iso-date-preferences:{seed}:{split}")  # str seeds: SHA-512, the same on every machine
        made = []
        for example in task[split]:
            mistakes = date_mistakes(example.date, example.input)
            usable = [kind for kind in kinds if mistakes[kind]]
            if not usable:
                continue
            kind = rng.choice(usable)
            prompt = tuple(example.messages(system)[:-1])  # what SFT trained on, minus the answer
            pair = PreferencePair(prompt, chosen=example.output, rejected=rng.choice(mistakes[kind]))
            made.append(DatePreferencePair(pair, kind, example))
        pairs[split] = made
    return pairs


def date_prompts(examples: Sequence[DateExample], system: str | None = None) -> list[tuple[list[Message], str]]:
    """The prompts of the task for reinforcement learning: the SFT chat turns without the answer, and the answer.

    `messages == example.messages(system)[:-1]`, what `examples/sft.py` generates from; for TRL's `GRPOTrainer`,
    `Dataset.from_list([{"prompt": m, "reference": r} for m, r in date_prompts(...)])` passes `reference` on to
    [`date_reward_fn`][llmdocs.data.iso_date_preferences.date_reward_fn].

    Args:
        examples: Examples of [`make_iso_date_task`][llmdocs.data.iso_dates.make_iso_date_task].
        system: A system message; None (the SFT chapter's choice) leaves it to the chat template.

    Returns:
        One `(messages, reference)` per example.

    Raises:
        TypeError: If `examples` is not a list or tuple of `DateExample`, or `system` is not a str or None.

    Examples:
        >>> [(m, r)] = date_prompts(make_iso_date_task(0, 0, 1)["test"])
        >>> [turn["role"] for turn in m], r
        (['user'], '2082-05-19')
    """
    if not isinstance(examples, list | tuple):
        raise TypeError(f"examples must be a list or tuple of DateExample, got {type(examples).__name__}")
    for i, example in enumerate(examples):
        if not isinstance(example, DateExample):
            raise TypeError(f"examples[{i}] must be a DateExample, got {type(example).__name__}")
    _check_system(system)
    return [(example.messages(system)[:-1], example.output) for example in examples]


def _completion_text(completion: object, i: int) -> str:
    """A completion as text: a str, or (TRL's conversational format) a list of messages whose last one is the answer."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list | tuple) and completion and isinstance(completion[-1], Mapping):
        content = completion[-1].get("content")
        if isinstance(content, str):
            return content
    raise TypeError(
        f"completions[{i}] must be a str or a list of messages ending with {{'role': 'assistant', 'content': str}}, "
        f"got {completion!r}"
    )


def date_reward_fn(completions: Sequence[object], reference: Sequence[str], **unused: Any) -> list[float]:
    """[`reward`][llmdocs.data.iso_dates.reward] of each completion: 1.0 right, 0.2 a wrong real ISO date, else 0.0.

    The signature of a TRL `GRPOTrainer` reward function: it is called with `prompts=`, `completions=`, the
    dataset's other columns (here `reference`) and more keywords, which are ignored.

    Args:
        completions: The answers: strings, or TRL's conversational completions (lists of messages, the answer last).
        reference: The right `YYYY-MM-DD` of each, as many.
        **unused: Ignored (`prompts`, `completion_ids`, `trainer_state`, ...).

    Returns:
        One reward per completion.

    Raises:
        TypeError: If `completions` or `reference` is not a list or tuple, or an item is not as described.
        ValueError: If their lengths differ.

    Examples:
        >>> date_reward_fn(["2024-03-05", " 2024-03-06", "March 5"], reference=["2024-03-05"] * 3)
        [1.0, 0.2, 0.0]
        >>> date_reward_fn([[{"role": "assistant", "content": "2024-03-05"}]], ["2024-03-05"], prompts=None)
        [1.0]
    """
    for name, values in (("completions", completions), ("reference", reference)):
        if not isinstance(values, list | tuple):
            raise TypeError(f"{name} must be a list or tuple (one item per completion), got {type(values).__name__}")
    if len(completions) != len(reference):
        raise ValueError(f"completions ({len(completions)}) and reference ({len(reference)}) must pair up")
    return [reward(_completion_text(c, i), r) for i, (c, r) in enumerate(zip(completions, reference, strict=True))]
