"""The generated date-normalisation task: determinism, splits by template, date and form, ground truth, scoring."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import subprocess
import sys

import pytest
from babel.dates import get_month_names

from llmdocs.data.iso_dates import (
    DATE_FORMS,
    TEMPLATES,
    TEST_ONLY_FORMS,
    DateExample,
    english_ordinal,
    exact_match,
    format_ok,
    make_iso_date_task,
    reward,
    write_date,
)

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def task() -> dict[str, list[DateExample]]:
    return make_iso_date_task()  # the defaults: 2,000 / 200 / 500


def _digest(task: dict[str, list[DateExample]], strings: bool = True) -> str:
    rows = [
        (split, e.output, e.form, e.template, *((e.instruction, e.input) if strings else ()))
        for split in SPLITS
        for e in task[split]
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


# ---- determinism -------------------------------------------------------------------------------------------------


def test_same_seed_same_task_other_seed_other_task(task: dict[str, list[DateExample]]) -> None:
    assert make_iso_date_task() == task
    other = make_iso_date_task(seed=1)
    assert [e.date for e in other["test"]] != [e.date for e in task["test"]]


def test_pinned_values_do_not_depend_on_the_machine(task: dict[str, list[DateExample]]) -> None:
    """Dates, forms and templates of seed 0, pinned: they come from `random.Random` with string seeds only."""
    assert {name: len(split) for name, split in task.items()} == {"train": 2000, "validation": 200, "test": 500}
    first = task["test"][0]
    assert (first.output, first.form, first.instruction) == (
        "2082-05-19",
        "zh_full",
        "Translate this date to the international standard format YYYY-MM-DD.",
    )
    assert (task["train"][0].output, task["validation"][0].output) == ("2086-11-23", "2030-08-16")


def test_same_task_under_another_hash_seed_locale_and_time_zone(task: dict[str, list[DateExample]]) -> None:
    code = (
        "from llmdocs.data.iso_dates import make_iso_date_task; import sys; "
        "sys.path.insert(0, 'tests'); from test_data_date_task import _digest; print(_digest(make_iso_date_task()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "LC_ALL": "de_DE.UTF-8", "LANG": "zh_CN.UTF-8", "TZ": "Asia/Tokyo"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True, timeout=120
    )
    assert result.stdout.strip() == _digest(task)


def test_test_split_does_not_depend_on_the_other_sizes() -> None:
    small = make_iso_date_task(n_train=10, n_validation=5, n_test=30)
    assert small["test"] == make_iso_date_task(n_train=300, n_validation=50, n_test=30)["test"]
    large = make_iso_date_task(n_train=300, n_validation=5, n_test=30)
    assert small["validation"] == large["validation"]
    assert [e.date for e in small["train"]] == [e.date for e in large["train"][:10]]  # more training dates, same first


# ---- splits ------------------------------------------------------------------------------------------------------


def test_templates_are_disjoint_between_splits(task: dict[str, list[DateExample]]) -> None:
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not set(TEMPLATES[a]) & set(TEMPLATES[b])
        assert not {e.instruction for e in task[a]} & {e.instruction for e in task[b]}
    for split in SPLITS:
        assert {e.instruction for e in task[split]} == set(TEMPLATES[split])  # every phrasing is used
        assert all(TEMPLATES[split][e.template] == e.instruction for e in task[split])


def test_dates_are_disjoint_between_splits(task: dict[str, list[DateExample]]) -> None:
    dates = {split: [e.date for e in task[split]] for split in SPLITS}
    assert all(len(set(d)) == len(d) for d in dates.values())  # no date twice in a split either
    every = [d for split in SPLITS for d in dates[split]]
    assert len(set(every)) == 2700
    assert all(dt.date(1900, 1, 1) <= d <= dt.date(2099, 12, 31) for d in every)


def test_test_only_form_is_unseen_in_training(task: dict[str, list[DateExample]]) -> None:
    assert TEST_ONLY_FORMS == ("en_gb_long",)
    seen = set(DATE_FORMS) - set(TEST_ONLY_FORMS)
    assert {e.form for e in task["train"]} == seen  # every other form is trained on
    assert {e.form for e in task["validation"]} <= seen
    assert {e.form for e in task["test"]} == set(DATE_FORMS)
    mixed = make_iso_date_task(n_train=200, n_validation=0, n_test=200, test_only_forms=())
    assert "en_gb_long" in {e.form for e in mixed["train"]}
    assert mixed["validation"] == []


# ---- ground truth ------------------------------------------------------------------------------------------------

_MONTHS = {
    locale: {
        name.lower(): month
        for width in ("wide", "abbreviated")
        for month, name in get_month_names(width, locale=locale).items()
    }
    for locale in ("en", "en_GB", "de", "fr")
}


def _parse_back(text: str, form: str) -> dt.date:
    """An independent reading of a surface form: numbers by position, month names from babel's tables."""
    locale = DATE_FORMS[form][0]
    if form.startswith("zh"):
        year, month, day = map(int, re.fullmatch(r"(\d{4})[年/](\d{1,2})[月/](\d{1,2})日?(?:星期.)?", text).groups())
    elif form == "en_numeric":
        month, day, year = map(int, text.split("/"))
    elif form == "de_numeric":
        day, month, year = map(int, text.split("."))
    else:
        words = re.findall(r"[^\W\d_]+\.?|\d+", text)
        numbers = [int(w) for w in words if w.isdigit()]
        day, year = numbers  # every named-month form has exactly the day and the year as numbers
        matches = {_MONTHS[locale][w.lower()] for w in words if w.lower() in _MONTHS[locale]}
        assert len(matches) == 1, (text, matches)
        month = matches.pop()
        if form == "en_ordinal":
            assert re.fullmatch(r"[A-Z][a-z]+ \d{1,2}(st|nd|rd|th), \d{4}", text), text
    return dt.date(year, month, day)


def test_every_output_is_the_iso_form_of_the_input(task: dict[str, list[DateExample]]) -> None:
    for split in SPLITS:
        for e in task[split]:
            assert format_ok(e.output) and e.output == e.date.isoformat()
            assert e.input == write_date(e.date, e.form)
            assert _parse_back(e.input, e.form) == e.date, (e.input, e.form)


def test_messages_are_a_chat(task: dict[str, list[DateExample]]) -> None:
    e = task["train"][0]
    assert e.messages() == [
        {"role": "user", "content": f"{e.instruction}\n{e.input}"},
        {"role": "assistant", "content": e.output},
    ]
    assert e.messages(system="Answer with the date only.")[0] == {
        "role": "system",
        "content": "Answer with the date only.",
    }


def test_surface_forms_by_hand() -> None:
    day = dt.date(2024, 3, 5)
    assert {form: write_date(day, form) for form in DATE_FORMS} == {
        "en_full": "Tuesday, March 5, 2024",
        "en_long": "March 5, 2024",
        "en_medium": "Mar 5, 2024",
        "en_numeric": "3/5/2024",
        "en_ordinal": "March 5th, 2024",
        "en_gb_long": "5 March 2024",
        "de_full": "Dienstag, 5. März 2024",
        "de_long": "5. März 2024",
        "de_numeric": "05.03.2024",
        "fr_full": "mardi 5 mars 2024",
        "fr_long": "5 mars 2024",
        "zh_full": "2024年3月5日星期二",
        "zh_long": "2024年3月5日",
        "zh_numeric": "2024/3/5",
    }
    assert write_date(dt.date(1987, 12, 22), "en_ordinal") == "December 22nd, 1987"


def test_english_ordinals() -> None:
    got = [english_ordinal(n) for n in (0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 21, 22, 23, 30, 31, 101, 111, 112)]
    assert got == [
        "0th", "1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "14th",
        "21st", "22nd", "23rd", "30th", "31st", "101st", "111th", "112th",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        english_ordinal(-1)


# ---- scoring -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "exact", "well_formed", "score"),
    [
        ("2024-03-05", True, True, 1.0),
        ("  2024-03-05\n", True, True, 1.0),  # surrounding whitespace is stripped
        ("2024-03-06", False, True, 0.2),  # the right format, the wrong day
        ("2024-3-5", False, False, 0.0),  # zeros missing
        ("2024-03-05.", False, False, 0.0),  # nothing but whitespace is forgiven
        ("2024 - 03 - 05", False, False, 0.0),
        ("20240305", False, False, 0.0),  # ISO's basic format is not what the task asks for
        ("2023-02-29", False, False, 0.0),  # not a calendar date
        ("2024-13-01", False, False, 0.0),
        ("２０２４-０３-０５", False, False, 0.0),  # full-width digits
        ("The date is 2024-03-05", False, False, 0.0),
        ("", False, False, 0.0),
    ],
)
def test_scoring_by_hand(prediction: str, exact: bool, well_formed: bool, score: float) -> None:
    assert exact_match(prediction, "2024-03-05") is exact
    assert format_ok(prediction) is well_formed
    assert reward(prediction, "2024-03-05") == score  # 0.8 * exact + 0.2 * format: exact sums of binary fractions


def test_reward_weights() -> None:
    assert reward("2024-03-05", "2024-03-05", exact_weight=1.0, format_weight=0.0) == 1.0
    assert reward("2024-03-06", "2024-03-05", exact_weight=1.0, format_weight=0.5) == 0.5
    with pytest.raises(ValueError, match=r"format_weight must be >= 0, got -0\.1"):
        reward("x", "y", format_weight=-0.1)
    with pytest.raises(ValueError, match="exact_weight must be >= 0"):
        reward("x", "y", exact_weight=float("nan"))
    with pytest.raises(TypeError, match="exact_weight must be a number, got str"):
        reward("x", "y", exact_weight="1")  # type: ignore[arg-type]


def test_scoring_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="prediction must be a str, got NoneType"):
        exact_match(None, "2024-03-05")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reference must be a str, got date"):
        exact_match("2024-03-05", dt.date(2024, 3, 5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prediction must be a str, got int"):
        format_ok(20240305)  # type: ignore[arg-type]


# ---- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_train": -1}, ValueError, "n_train must be a non-negative int"),
        ({"n_validation": 2.5}, ValueError, "n_validation must be a non-negative int"),
        ({"n_test": True}, ValueError, "n_test must be a non-negative int"),
        ({"seed": "0"}, ValueError, "seed must be an int"),
        ({"start": "1900-01-01"}, TypeError, "start must be a datetime.date, got str"),
        ({"end": dt.datetime(2000, 1, 1)}, TypeError, "end must be a datetime.date, got datetime"),
        ({"start": dt.date(2000, 1, 1), "end": dt.date(1999, 1, 1)}, ValueError, "start <= end"),
        ({"start": dt.date(999, 1, 1)}, ValueError, "1000-01-01 <= start"),
        ({"start": dt.date(2000, 1, 1), "end": dt.date(2000, 1, 31)}, ValueError, "2700 examples need 2700 distinct"),
        ({"test_only_forms": ("en_uk",)}, ValueError, r"test_only_forms has unknown forms \['en_uk'\]"),
        ({"test_only_forms": tuple(DATE_FORMS)}, ValueError, "holds every form"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make_iso_date_task(**kwargs)


def test_write_date_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"form must be one of en_full, .*; got 'iso'"):
        write_date(dt.date(2024, 3, 5), "iso")
    with pytest.raises(TypeError, match=r"day must be a datetime\.date"):
        write_date(dt.datetime(2024, 3, 5, 12), "en_long")
    with pytest.raises(TypeError, match=r"day must be a datetime\.date"):
        write_date("2024-03-05", "en_long")  # type: ignore[arg-type]
