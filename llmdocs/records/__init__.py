"""Recorded results of the runs that are too long for a page: benchmarks and full training runs.

A chapter that quotes a 15-minute training run does not re-run it at every build: it reads the JSON record that
the run wrote, and shows the command that wrote it beside the numbers. Each record is produced by a script in
``examples/`` (its ``"command"`` field says which), never typed in by hand; re-running the command refreshes it.

| record | written by |
|---|---|
| ``norm_placement`` | ``python examples/benchmarks/norm_placement.py`` |
| ``bpe_training`` | ``python examples/benchmarks/bpe_training.py`` |
| ``cbow_vs_gensim`` | ``python examples/benchmarks/cbow_vs_gensim.py`` |
| ``translation`` | ``torchrun ... examples/train_translation.py`` (its ``results.json``, copied) |
| ``gpt_benchmark`` | ``python examples/benchmarks/gpt.py --json ...`` |
| ``nanogpt_reference`` | ``python examples/benchmarks/nanogpt_reference.py --json ...`` |
| ``gpt_nanogpt_cpu`` | ``python examples/train_gpt.py --preset nanogpt-cpu ... --record ...`` |
| ``gpt_shakespeare`` | ``python examples/train_gpt.py --preset tuned ... --record ...`` |
| ``gpt_tang`` | ``python examples/train_gpt.py --preset tang ... --record ...`` |
| ``wordpiece_training`` | ``python examples/benchmarks/wordpiece_training.py --json ...`` |
| ``sentence_embeddings`` | ``python examples/benchmarks/sentence_embeddings.py --json ...`` |
| ``bert_pretraining_reference`` | ``python examples/benchmarks/bert_pretraining_reference.py --json ...`` |
| ``bert_sms_spam`` | ``python examples/benchmarks/bert_classification.py --json ...`` |
| ``bert_wikitext2`` | ``python examples/pretrain_bert.py --steps 2000 ... --record ...`` |
| ``bert_people_daily`` | ``python examples/pretrain_bert.py --corpus people-daily+reviews ... --record ...`` |
| ``bert_nsp_ablation`` | ``python examples/benchmarks/nsp_ablation.py --with-nsp ... --without-nsp ... --json ...`` |
| ``bert_review_sentiment`` | ``python examples/benchmarks/bert_classification.py --task review-sentiment ...`` |
| ``vit_fashion_mnist_budget`` | ``python examples/benchmarks/vit_vs_cnn.py --json ...`` |
| ``vit_data_hunger`` | ``python examples/benchmarks/vit_vs_cnn.py --experiment data-hunger --json ...`` |
| ``vit_patch_size`` | ``python examples/benchmarks/vit_vs_cnn.py --experiment patch-size --json ...`` |
| ``llama_generation`` | ``python examples/benchmarks/llama_generation.py --json ...`` |
| ``llama_kv_cache`` | ``python examples/benchmarks/kv_cache.py --json ...`` |
| ``llama_ladder`` | ``python examples/benchmarks/llama_ladder.py`` |
| ``lora_sms_spam`` | ``python examples/benchmarks/lora_classification.py --json ...`` |
| ``lora_review_sentiment`` | ``python examples/benchmarks/lora_classification.py --task review-sentiment ...`` |
| ``sft_iso_dates`` | ``python examples/sft.py --baseline --json ...`` |
| ``sft_iso_dates_unmasked`` | ``python examples/sft.py --no-mask-prompt --json ...`` |
| ``preferences_start`` | ``python examples/sft.py --n-train 192 ...`` (its ``results.json``, copied) |
| ``preferences_ppo`` | ``python examples/preferences.py --method ppo --minutes 8 ...`` (``results.json``, copied) |
| ``preferences_grpo`` | ``python examples/preferences.py --method grpo --minutes 8 ...`` (``results.json``, copied) |
| ``preferences_dpo`` | ``python examples/preferences.py --method dpo --minutes 8 ...`` (``results.json``, copied) |
| ``preferences_dpo_rpo`` | ``python examples/preferences.py --method dpo --rpo-alpha 1 ...`` (copied) |
| ``preferences_reward_model_dates`` | ``python examples/preferences.py --method reward-model ...`` (copied) |
| ``preferences_trl`` | ``python examples/benchmarks/preferences_trl.py ...`` (ours' ``cpu_seconds``: whole run) |
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["available_records", "load_record", "write_record"]


def _root() -> Path:
    return Path(__file__).resolve().parent


def available_records() -> list[str]:
    """Names of the recorded runs.

    Examples:
        >>> "norm_placement" in available_records()
        True
    """
    return sorted(p.stem for p in _root().glob("*.json"))


def load_record(name: str) -> dict[str, Any]:
    """The JSON record of a long run.

    Args:
        name: One of :func:`available_records`.

    Returns:
        The record; every record has a ``"command"`` field with the command that produced it.

    Examples:
        >>> load_record("norm_placement")["command"].startswith("python examples/benchmarks/norm_placement.py")
        True
    """
    path = _root() / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no record named {name!r}; available: {available_records()}")
    return json.loads(path.read_text(encoding="utf-8"))


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write a benchmark's record as JSON, atomically: a crash leaves the old record or the new one, never half.

    Args:
        path: the JSON file (its folder is created).
        record: JSON-friendly data; non-ASCII text is kept as is.

    Returns:
        The path written.

    Examples:
        >>> import tempfile
        >>> path = write_record(Path(tempfile.mkdtemp()) / "r.json", {"command": "python x.py", "ratio": 1.5})
        >>> json.loads(path.read_text())["ratio"]
        1.5
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
