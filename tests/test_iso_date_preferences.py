"""Tests for llmdocs.data.iso_date_preferences: mistakes by hand, rewards, determinism, splits, SFT prompts, errors.

Rewards (`iso_dates.reward`, weights 0.8 exact and 0.2 format): the right date 0.8 * 1 + 0.2 * 1 = 1.0; a real but
wrong `YYYY-MM-DD` 0.8 * 0 + 0.2 * 1 = 0.2; anything else (`2024-3-5`, `3/5/2024`, a sentence) 0.0. So the four
date kinds score 0.2 and the three others 0.0, both < 1.0.

Mistakes worked by hand:
- 2024-03-05: swapped 2024-05-03; a day off 2024-03-04 / 2024-03-06; century 2024 - 100 = 1924; months 02 and 04.
- 1999-12-31: a day off 1999-12-30 / 2000-01-01 (over the year); century 1999 + 100 = 2099; no month 13 and no
  November 31 (30 days): no wrong_month; day 31 > 12: no swap; month and day >= 10: no unpadded form.
- 2000-02-29: 1900 is divisible by 100 but not by 400, so no 1900-02-29: no wrong_year; January and March have a
  29th: wrong_month 2000-01-29 / 2000-03-29.
- 2024-01-31: no month 0 and no February 31: no wrong_month. 2012-12-12: day == month, no swap.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
from collections import Counter

import pytest

from llmdocs.data.iso_date_preferences import (
    MISTAKE_KINDS,
    WITH_WORDS,
    DatePreferencePair,
    date_mistakes,
    date_prompts,
    date_reward_fn,
    make_date_preference_pairs,
)
from llmdocs.data.iso_dates import TEMPLATES, DateExample, format_ok, make_iso_date_task, reward
from llmdocs.data.llamafactory import PreferencePair, split_examples
from llmdocs.finetuning.chat import check_messages

SPLITS = ("train", "validation", "test")
DATE_KINDS = ("day_month_swapped", "off_by_one_day", "wrong_year", "wrong_month")  # real dates: reward 0.2


@pytest.fixture(scope="module")
def pairs() -> dict[str, list[DatePreferencePair]]:
    return make_date_preference_pairs()  # the defaults: the SFT chapter's 2,000 / 200 / 500, seed 0


@pytest.fixture(scope="module")
def task() -> dict[str, list[DateExample]]:
    return make_iso_date_task()


# ---- the mistakes, by hand ---------------------------------------------------------------------------------------


def test_mistakes_of_hand_worked_dates() -> None:
    assert date_mistakes(dt.date(2024, 3, 5), "March 5th, 2024") == {
        "day_month_swapped": ("2024-05-03",),
        "off_by_one_day": ("2024-03-04", "2024-03-06"),
        "wrong_year": ("1924-03-05",),
        "wrong_month": ("2024-02-05", "2024-04-05"),
        "not_iso": ("March 5th, 2024", "3/5/2024", "2024/03/05"),
        "unpadded": ("2024-3-5",),
        "with_words": ("The date is 2024-03-05.", "2024-03-05 (ISO 8601)", "Sure! In ISO 8601 format: 2024-03-05"),
    }
    new_year = date_mistakes(dt.date(1999, 12, 31))
    assert new_year["off_by_one_day"] == ("1999-12-30", "2000-01-01") and new_year["wrong_year"] == ("2099-12-31",)
    assert new_year["wrong_month"] == new_year["day_month_swapped"] == new_year["unpadded"] == ()
    assert new_year["not_iso"] == ("12/31/1999", "1999/12/31")  # nothing echoed without `written`
    leap = date_mistakes(dt.date(2000, 2, 29))
    assert leap["wrong_year"] == () and leap["wrong_month"] == ("2000-01-29", "2000-03-29")
    assert date_mistakes(dt.date(2024, 1, 31))["wrong_month"] == ()
    assert date_mistakes(dt.date(2012, 12, 12))["day_month_swapped"] == ()
    # the US form of the input is the US answer: echoed once, not twice
    assert date_mistakes(dt.date(2024, 3, 5), "3/5/2024")["not_iso"] == ("3/5/2024", "2024/03/05")


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


EDGES = [dt.date(1000, 1, 1), dt.date(1900, 1, 1), dt.date(1900, 2, 28), dt.date(2099, 12, 31), dt.date(9999, 12, 31)]


@functools.cache
def _every_days_mistakes() -> list[tuple[dt.date, dict[str, tuple[str, ...]]]]:
    """Each day of the test below with its mistakes of every kind: computed once for the six kinds' tests."""
    days = [*_days(dt.date(1996, 1, 1), dt.date(2004, 12, 31)), *EDGES]
    return [(day, date_mistakes(day, f"{day.day}.{day.month}.{day.year}")) for day in days]


@pytest.mark.parametrize("kind", list(MISTAKE_KINDS))
def test_every_rejected_answer_scores_below_the_chosen_one_on_every_date(kind: str) -> None:
    """Every day of 1996..2004 (leap years, 2000-02-29, the century change) and the ends of the range."""
    applies = 0
    for day, mistakes in _every_days_mistakes():
        iso = day.isoformat()
        answers = mistakes[kind]
        applies += bool(answers)
        assert len(set(answers)) == len(answers)
        for answer in answers:
            assert answer != iso and reward(answer, iso) < reward(iso, iso) == 1.0
            assert reward(answer, iso) == pytest.approx(0.2 if kind in DATE_KINDS else 0.0)
            if kind in DATE_KINDS:  # a real date, at the distance the kind says
                other = dt.date.fromisoformat(answer)
                if kind == "off_by_one_day":
                    assert abs((other - day).days) == 1
                elif kind == "wrong_year":
                    century = day.year + 100 if day.year < 2000 else day.year - 100
                    assert (other.year, other.month, other.day) == (century, day.month, day.day)
                elif kind == "wrong_month":
                    assert (other.year, other.day, abs(other.month - day.month)) == (day.year, day.day, 1)
                else:
                    assert (other.year, other.month, other.day) == (day.year, day.day, day.month)
    assert applies > 0


def test_when_the_conditional_kinds_apply() -> None:
    for day in _days(dt.date(1999, 1, 1), dt.date(2000, 12, 31)):
        mistakes = date_mistakes(day)
        assert bool(mistakes["day_month_swapped"]) == (day.day <= 12 and day.day != day.month)
        assert bool(mistakes["unpadded"]) == (day.day < 10 or day.month < 10)
        century = day.year + 100 if day.year < 2000 else day.year - 100
        assert bool(mistakes["wrong_year"]) == ((day.month, day.day) != (2, 29) or calendar.isleap(century))
        neighbours = [m for m in (day.month - 1, day.month + 1) if 1 <= m <= 12]
        assert bool(mistakes["wrong_month"]) == any(day.day <= calendar.monthrange(day.year, m)[1] for m in neighbours)
        for kind in ("off_by_one_day", "not_iso", "with_words"):
            assert mistakes[kind]  # these always apply
        assert mistakes["with_words"] == tuple(s.format(iso=day.isoformat()) for s in WITH_WORDS)


# ---- the pairs ---------------------------------------------------------------------------------------------------


def test_pairs_are_preference_pairs_chosen_right_rejected_of_its_kind(
    pairs: dict[str, list[DatePreferencePair]],
) -> None:
    for split in SPLITS:
        for p in pairs[split]:
            assert isinstance(p.pair, PreferencePair) and p.kind in MISTAKE_KINDS
            assert p.pair.chosen == p.example.output == p.example.date.isoformat()
            assert p.pair.rejected in date_mistakes(p.example.date, p.example.input)[p.kind]
            assert reward(p.pair.rejected, p.pair.chosen) < reward(p.pair.chosen, p.pair.chosen) == 1.0
            assert format_ok(p.pair.rejected) == (p.kind in DATE_KINDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pairs["test"][0].kind = "other"  # type: ignore[misc]


def test_same_call_same_pairs_other_seed_other_pairs(pairs: dict[str, list[DatePreferencePair]]) -> None:
    assert make_date_preference_pairs() == pairs
    other = make_date_preference_pairs(seed=1)
    assert [p.pair for p in other["test"]] != [p.pair for p in pairs["test"]]
    assert [p.kind for p in other["test"]] != [p.kind for p in pairs["test"]]


def test_pinned_values_do_not_depend_on_the_machine(pairs: dict[str, list[DatePreferencePair]]) -> None:
    """String-seeded `random.Random` only (SHA-512), as in iso_dates: these values hold on every machine."""
    first = pairs["test"][0]
    assert (first.pair.chosen, first.pair.rejected, first.kind) == ("2082-05-19", "2082/05/19", "not_iso")
    assert Counter(p.kind for p in pairs["test"]) == {
        "off_by_one_day": 86, "not_iso": 85, "wrong_month": 79, "wrong_year": 76, "with_words": 75, "unpadded": 68,
        "day_month_swapped": 31,
    }  # fmt: skip


def test_every_split_covers_every_kind(pairs: dict[str, list[DatePreferencePair]]) -> None:
    for split in SPLITS:
        assert set(Counter(p.kind for p in pairs[split])) == set(MISTAKE_KINDS)
    counts = Counter(p.kind for p in pairs["train"])
    for kind in MISTAKE_KINDS:  # uniform among the kinds that apply: 1/7 of the 2,000, less for the conditional ones
        assert counts[kind] >= 50 and (kind == "day_month_swapped" or counts[kind] >= 2000 / 7 * 0.8)


def test_chosen_kinds_only_and_examples_where_none_applies_left_out(task: dict[str, list[DateExample]]) -> None:
    some = make_date_preference_pairs(kinds=("wrong_year", "unpadded"))
    assert {p.kind for split in SPLITS for p in some[split]} == {"wrong_year", "unpadded"}
    swaps = make_date_preference_pairs(kinds=["day_month_swapped"])["test"]
    eligible = [e for e in task["test"] if e.date.day <= 12 and e.date.day != e.date.month]
    assert [p.example for p in swaps] == eligible and len(swaps) == 186  # 37% of the 500 test dates


def test_splits_are_the_sft_tasks_splits(
    pairs: dict[str, list[DatePreferencePair]], task: dict[str, list[DateExample]]
) -> None:
    for split in SPLITS:
        assert [p.example for p in pairs[split]] == task[split]  # every example, in order: one pair each
    dates = {split: {p.example.date for p in pairs[split]} for split in SPLITS}
    phrasings = {split: {p.example.instruction for p in pairs[split]} for split in SPLITS}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not dates[a] & dates[b] and not phrasings[a] & phrasings[b]
    assert phrasings["test"] <= set(TEMPLATES["test"])
    small = make_date_preference_pairs(n_train=10, n_validation=3, n_test=500)
    assert small["test"] == pairs["test"]  # the test pairs do not depend on the other sizes


def test_prompts_are_the_sft_prompts(pairs: dict[str, list[DatePreferencePair]]) -> None:
    """examples/sft.py trains on `e.messages()` and generates from `e.messages()[:-1]`: no system turn."""
    for p in pairs["test"]:
        assert list(p.pair.prompt) == p.example.messages()[:-1] == [{"role": "user", "content": p.example.prompt}]
        assert p.pair.chosen_messages() == p.example.messages()
        assert check_messages(p.pair.rejected_messages())[-1] == {"role": "assistant", "content": p.pair.rejected}
    system = "Answer with the date only."
    with_system = make_date_preference_pairs(4, 2, 2, system=system)
    assert all(p.pair.prompt == tuple(p.example.messages(system)[:-1]) for s in SPLITS for p in with_system[s])
    assert with_system["test"][0].pair.prompt[0] == {"role": "system", "content": system}
    # the same prompt code as LLaMA-Factory's pairs: split_examples groups them by their prompt
    parts = split_examples([p.pair for p in pairs["validation"]], (0.5, 0.5), names=("a", "b"))
    assert len(parts["a"]) + len(parts["b"]) == 200


def test_date_prompts_and_reward_fn(task: dict[str, list[DateExample]]) -> None:
    prompts = date_prompts(task["test"])
    assert prompts == [(e.messages()[:-1], e.output) for e in task["test"]]
    assert date_prompts(task["test"][:2], system="Be brief.")[0][0][0] == {"role": "system", "content": "Be brief."}
    references = [r for _, r in prompts[:3]]
    century = date_mistakes(task["test"][2].date)["wrong_year"][0]
    answers = [references[0], references[1].replace("-", "/"), f" {century}\n"]  # right, not ISO, a wrong date
    assert date_reward_fn(answers, references) == pytest.approx([1.0, 0.0, 0.2])
    # TRL's GRPOTrainer: conversational completions, and prompts, completion_ids, ... as keywords
    conversational = [[{"role": "assistant", "content": a}] for a in answers]
    out = date_reward_fn(prompts=[m for m, _ in prompts[:3]], completions=conversational, completion_ids=[[1]] * 3,
                         reference=references, trainer_state=None)  # fmt: skip
    assert out == pytest.approx([1.0, 0.0, 0.2])


# ---- errors ------------------------------------------------------------------------------------------------------


def test_bad_arguments_are_refused_with_their_name(task: dict[str, list[DateExample]]) -> None:
    with pytest.raises(TypeError, match="kinds must be a tuple"):
        make_date_preference_pairs(2, 0, 0, kinds="not_iso")
    with pytest.raises(ValueError, match=r"unknown kinds \['typo'\]"):
        make_date_preference_pairs(2, 0, 0, kinds=("not_iso", "typo"))
    with pytest.raises(ValueError, match="non-empty and without repeats"):
        make_date_preference_pairs(2, 0, 0, kinds=())
    with pytest.raises(ValueError, match="non-empty and without repeats"):
        make_date_preference_pairs(2, 0, 0, kinds=("not_iso", "not_iso"))
    with pytest.raises(TypeError, match="system must be a str or None"):
        make_date_preference_pairs(2, 0, 0, system=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_train must be a non-negative int"):
        make_date_preference_pairs(-1)
    with pytest.raises(TypeError, match=r"day must be a datetime\.date"):
        date_mistakes(dt.datetime(2024, 3, 5))
    with pytest.raises(TypeError, match="written must be a str"):
        date_mistakes(dt.date(2024, 3, 5), 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="examples must be a list or tuple of DateExample"):
        date_prompts(task["test"][0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"examples\[1\] must be a DateExample"):
        date_prompts([task["test"][0], "2024-03-05"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="system must be a str or None"):
        date_prompts(task["test"][:1], system=["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"completions \(2\) and reference \(1\) must pair up"):
        date_reward_fn(["a", "b"], ["2024-03-05"])
    with pytest.raises(TypeError, match="reference must be a list or tuple"):
        date_reward_fn(["a"], "2024-03-05")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"completions\[0\] must be a str or a list of messages"):
        date_reward_fn([[]], ["2024-03-05"])
    with pytest.raises(TypeError, match="reference must be a str"):
        date_reward_fn(["2024-03-05"], [None])  # type: ignore[list-item]
