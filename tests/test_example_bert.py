"""Smoke runs of `examples/pretrain_bert.py` (both corpora, with and without NSP, exact resume) and of the
benchmark that trains Hugging Face's BertForPreTraining beside ours."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

from llmdocs.serialization import load_encoder
from scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("pretrain_bert.py")


@pytest.fixture(scope="module")
def wikitext_run(script, tmp_path_factory) -> tuple[Path, dict]:
    """One default smoke run (with a record), shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("wikitext")
    return root, smoke(script, root / "run", "--record", str(root / "record.json"))


def smoke(script: ModuleType, out: Path, *flags: str) -> dict:
    return script.main(["--smoke", "--no-progress", "--out-dir", str(out), *flags])


def test_wikitext_smoke_run_writes_results_a_record_and_a_loadable_encoder(wikitext_run) -> None:
    root, results = wikitext_run
    out = root / "run"
    assert results["corpus"] == "wikitext2" and results["nsp"] and results["steps"] == 6
    for key in ("val_mlm_accuracy", "val_nsp_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    assert math.isfinite(results["val_mlm_loss"]) and results["params"] > 0
    assert results["command"].startswith("python examples/pretrain_bert.py --smoke")
    assert len(results["fill_mask"]) == 3
    assert all("[MASK]" in ex["text"] and len(ex["top5"]) == 5 for ex in results["fill_mask"])
    record = json.loads((root / "record.json").read_text(encoding="utf-8"))
    assert record["val_mlm_accuracy"] == results["val_mlm_accuracy"] and record["history"]
    assert (out / "curve.svg").is_file() and (out / "metrics.jsonl").is_file()

    model, tokenizer, meta = load_encoder(out / "model")
    assert type(model).__name__ == "BertForPreTraining" and meta["results"]["steps"] == 6
    assert model.config.vocab_size == tokenizer.vocab_size == results["vocab_size"]
    enc = tokenizer.encode("the [MASK] of the river .")
    mlm, nsp = model(torch.tensor([enc["input_ids"]]))
    assert mlm.shape == (1, len(enc["input_ids"]), tokenizer.vocab_size) and nsp.shape == (1, 2)


@pytest.mark.filterwarnings("ignore:WordPiece training learnt")  # 10 paragraphs repeat few pairs of pieces
def test_chinese_without_nsp_and_whole_word_masking(script, tmp_path) -> None:
    export = ["--export", str(tmp_path / "shipped"), "--export-dtype", "float16"]  # how a shipped model is saved
    results = smoke(script, tmp_path / "zh", "--corpus", "people-daily", "--no-nsp", "--whole-word", *export)
    assert results["corpus"] == "people-daily" and not results["nsp"] and results["whole_word"]
    assert "val_nsp_accuracy" not in results and 0.0 <= results["val_mlm_accuracy"] <= 1.0
    assert all(" " not in ex["text"].replace("[MASK]", "") for ex in results["fill_mask"])  # written as Chinese
    shipped = tmp_path / "shipped"
    assert json.loads((shipped / "config.json").read_text(encoding="utf-8"))["weights_dtype"] == "float16"
    full, half = (folder / "model.safetensors" for folder in (tmp_path / "zh" / "model", shipped))
    assert half.stat().st_size < 0.6 * full.stat().st_size and load_encoder(shipped)[2]["results"]["corpus"]


def test_budget_stop_then_resume_equals_an_unbroken_run(script, wikitext_run, tmp_path) -> None:
    unbroken = wikitext_run[0] / "run"  # the same flags but --record, which changes nothing in training
    broken = tmp_path / "broken"
    stopped = smoke(script, broken, "--minutes", "1e-6")  # stops after the first step, with a checkpoint
    assert stopped["steps"] == 1
    resumed = smoke(script, broken, "--resume")
    assert resumed["steps"] == 6
    a = load_file(unbroken / "model" / "model.safetensors")
    b = load_file(broken / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical, dropout included


def test_smoke_never_writes_into_a_real_runs_folder_and_flags_are_not_abbreviated(script) -> None:
    """--smoke's default --out-dir is its own (a smoke run once replaced a real run's runs/bert), and "--smok" is
    refused instead of being read as --smoke without the smoke settings (they apply when "--smoke" is given)."""
    assert script.parse_args(["--smoke"]).out_dir == "runs/bert-smoke" and script.parse_args([]).out_dir == "runs/bert"
    finetune = load_script("finetune_bert.py")
    assert finetune.parse_args(["--smoke"]).out_dir == "runs/finetune-bert-smoke"
    for parse in (script.parse_args, finetune.parse_args):
        with pytest.raises(SystemExit):
            parse(["--smok"])


def test_bad_flags(script, tmp_path) -> None:
    for flags in (
        ["--mlm-probability", "1.5"],
        ["--context-length", "4"],
        ["--minutes", "0"],
        ["--minutes", "nan"],
        ["--batch-size", "0"],
        ["--n-heads", "3"],  # does not divide d_model=32
        ["--dropout", "1.5"],
        ["--seq-length", "33"],  # past the model's 32 positions
        ["--seq-length", "7"],
        ["--init-from", str(tmp_path)],  # no model there
        ["--init-from", "llmdocs/pretrained/gpt-tang-char"],  # a GPT
    ):
        with pytest.raises(SystemExit):
            smoke(script, tmp_path / "bad", *flags)


def test_two_phases_short_sequences_then_init_from_on_the_full_length(script, tmp_path, capsys) -> None:
    """BERT's schedule (Devlin et al., 2019, appendix A.2): most steps on short sequences of a model with all its
    positions, then the same model continued on full-length ones with --init-from."""
    short = smoke(script, tmp_path / "p1", "--seq-length", "16")
    assert short["seq_length"] == 16 and short["model_config"]["context_length"] == 32
    first, _, _ = load_encoder(tmp_path / "p1" / "model")
    long = smoke(script, tmp_path / "p2", "--init-from", str(tmp_path / "p1"), "--dropout", "0.0")
    assert long["seq_length"] == 32 and long["init_from"] == str(tmp_path / "p1" / "model")
    assert long["model_config"] == {**short["model_config"], "dropout": 0.0}  # its shape; dropout may change
    earlier = long["init_run"]  # the record tells both phases: phase 1's command, results and held-out curve
    assert earlier["command"] == short["command"]
    assert earlier["steps"] == short["steps"] == earlier["history"][-1]["step"]
    assert earlier["val_mlm_accuracy"] == short["val_mlm_accuracy"] and short["init_run"] is None
    assert all("val_mlm_accuracy" in row and "loss" not in row for row in earlier["history"])
    assert (tmp_path / "p2" / "tokenizer" / "vocab.txt").read_text() == (
        tmp_path / "p1" / "model" / "vocab.txt"
    ).read_text()
    second, _, _ = load_encoder(tmp_path / "p2" / "model")
    assert not torch.equal(
        first.bert.embeddings.pos_embed.weight, second.bert.embeddings.pos_embed.weight
    )  # trained on
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", "--init-from", str(tmp_path / "p1"), "--d-model", "64"])
    assert "the model's shape and vocabulary from" in capsys.readouterr().err  # and which flag to drop
    with pytest.raises(SystemExit):  # phase 2 would overwrite phase 1
        script.parse_args(["--smoke", "--init-from", str(tmp_path / "p1"), "--out-dir", str(tmp_path / "p1")])
    assert "is the run of --init-from" in capsys.readouterr().err


def test_reference_benchmark_smoke(tmp_path) -> None:
    bench = load_script("benchmarks/bert_pretraining_reference.py")
    record = bench.main(["--smoke", "--json", str(tmp_path / "r.json")])
    ours, hf = record["results"]["ours"], record["results"]["hf"]
    # same weights, batches and dropout streams: the two models see the same losses at the start
    assert ours["val_mlm_accuracy"] == pytest.approx(hf["val_mlm_accuracy"], abs=0.05)  # not rounding: 4 fp32 steps
    assert record["time_per_step_ratio"] > 0 and json.loads((tmp_path / "r.json").read_text())["steps"] == 4


def test_a_pretrained_model_fine_tunes_with_model_dir(wikitext_run, tmp_path) -> None:
    """The folder pretrain_bert.py exports is an encoder that finetune_bert.py fine-tunes (its heads dropped)."""
    model_dir = str(wikitext_run[0] / "run" / "model")
    finetune = load_script("finetune_bert.py")
    results = finetune.main(["--smoke", "--no-progress", "--model-dir", model_dir, "--out-dir", str(tmp_path / "ft")])
    assert results["model"] == model_dir and 0.0 <= results["test_accuracy"] <= 1.0
    encoder, _ = finetune.load_encoder("minilm", str(wikitext_run[0] / "run"))  # the run's --out-dir works too
    assert type(encoder).__name__ == "BertModel"


def test_finetune_flags_fail_before_any_work(tmp_path) -> None:
    finetune = load_script("finetune_bert.py")
    for flags in (
        ["--export", str(tmp_path / "x"), "--model-dir", str(tmp_path)],
        ["--max-length", "2"],
        ["--minutes", "nan"],
    ):
        with pytest.raises(SystemExit):
            finetune.parse_args(flags)
    args = finetune.parse_args(["--smoke", "--max-length", "16"])  # an explicit flag wins over --smoke's default
    assert args.max_length == 16 and args.epochs == 2


def test_finetune_resume_continues_the_same_run_only(wikitext_run, tmp_path) -> None:
    """run_args.json holds what defines the run; --resume refuses any other value of those flags, a fresh run a
    folder with checkpoints, and a resume a folder without: one line each, before the encoder is loaded."""
    finetune = load_script("finetune_bert.py")
    flags = ["--smoke", "--no-progress", "--model-dir", str(wikitext_run[0] / "run" / "model"), "--mode", "head"]
    out = tmp_path / "ft"
    stopped = finetune.main([*flags, "--out-dir", str(out), "--minutes", "1e-6"])  # a checkpoint after one step
    assert not stopped["finished"]
    saved = json.loads((out / "run_args.json").read_text(encoding="utf-8"))
    assert (saved["mode"], saved["lr"], saved["dropout"], saved["smoke"]) == ("head", 0.1, 0.1, True)
    assert not {"minutes", "threads", "device", "export", "out_dir", "resume"} & set(saved)  # may change on resume
    for extra, message in (
        (["--resume", "--dropout", "0"], "but these flags differ: --dropout 0.1 -> 0.0: give the run's values"),
        (["--resume", "--mode", "full"], "--mode head -> full; --lr 0.1 -> 0.0002"),  # lr: the mode's default
        ([], f"error: --out-dir {out} already holds the checkpoints of a run: continue it with --resume"),
        (["--out-dir", str(tmp_path / "none"), "--resume"], "error: --resume: there is nothing to resume in"),
        (["--out-dir", str(out / "run_args.json")], "run_args.json is a file, not a folder"),
    ):
        with pytest.raises(SystemExit, match=re.escape(message)):
            finetune.main([*flags, "--out-dir", str(out), *extra])
    resumed = finetune.main([*flags, "--out-dir", str(out), "--resume", "--minutes", "5"])  # the budget may change
    assert resumed["finished"] and resumed["steps_done"] == resumed["steps"] == 8


def test_finetune_messages(capsys, monkeypatch) -> None:
    """--lr's help says its default once; a missing --model-dir "does not exist"; --device cuda without CUDA and an
    unknown device are usage errors that name the flag."""
    finetune = load_script("finetune_bert.py")
    help_text = " ".join(finetune.build_parser().format_help().split())  # wrapped to the terminal: one line
    options = help_text.rpartition("--lr LR")[2].partition("--batch-size")[0]
    assert options.count("(default:") == 1 and "None" not in options and "last-block 0.0003" in options
    with pytest.raises(SystemExit) as refused:
        finetune.parse_args(["--model-dir", "/nonexistent/bert"])
    err = capsys.readouterr().err
    hint = "give a BERT folder of examples/pretrain_bert.py, e.g. llmdocs/pretrained/bert-wikitext2"
    assert refused.value.code == 2 and err.endswith(f": error: --model-dir /nonexistent/bert does not exist: {hint}\n")
    assert err.count("\n") == 1  # one line: no usage, no traceback
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in (("cuda", "CUDA is not available"), ("tpu", "device must be one of auto, cpu, cuda, mps")):
        with pytest.raises(SystemExit):
            finetune.parse_args(["--device", device])
        assert f"error: --device {device}: " in (err := capsys.readouterr().err) and message in err


def test_finetune_rejects_a_max_length_past_the_encoder(wikitext_run) -> None:
    finetune = load_script("finetune_bert.py")
    model_dir = str(wikitext_run[0] / "run" / "model")  # context_length 32
    with pytest.raises(SystemExit, match="exceeds the encoder's 32 positions"):
        finetune.main(["--smoke", "--no-progress", "--model-dir", model_dir, "--max-length", "64"])


def test_nsp_ablation_smoke_fine_tunes_both_runs_and_refuses_unlike_ones(script, wikitext_run, tmp_path) -> None:
    with_nsp = wikitext_run[0] / "run"
    without = tmp_path / "no-nsp"
    smoke(script, without, "--no-nsp")
    ablation = load_script("benchmarks/nsp_ablation.py")
    flags = ["--with-nsp", str(with_nsp), "--without-nsp", str(without), "--smoke", "--no-progress"]
    record = ablation.main([*flags, "--modes", "head", "--seeds", "0", "1", "--json", str(tmp_path / "r.json")])
    assert list(record["results"]) == ["with NSP/head", "without NSP/head"]
    for result in record["results"].values():
        assert len(result["test_accuracy"]) == 2 and 0.0 <= result["mean"] <= 1.0 and result["stdev"] >= 0.0
        assert result["runs"][0]["trainable_params"] == result["runs"][1]["trainable_params"] > 0
    assert "val_nsp_accuracy" in record["pretraining"]["with NSP"]
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["seeds"] == [0, 1]
    with pytest.raises(SystemExit, match="differ in more than NSP"):
        other = tmp_path / "other"
        smoke(script, other, "--no-nsp", "--mlm-probability", "0.3")
        ablation.main(["--with-nsp", str(with_nsp), "--without-nsp", str(other), "--smoke", "--no-progress"])
    with pytest.raises(SystemExit, match="with NSP"):  # swapped
        ablation.main(["--with-nsp", str(without), "--without-nsp", str(with_nsp), "--smoke", "--no-progress"])
    with pytest.raises(SystemExit):
        ablation.main(["--with-nsp", str(tmp_path), "--without-nsp", str(without)])  # not a run folder
    for flags in (["--seeds", "0", "0"], ["--modes", "head", "head"], ["--json", str(tmp_path / "no" / "r.json")]):
        with pytest.raises(SystemExit):  # before any fine-tuning
            ablation.parse_args(["--with-nsp", str(with_nsp), "--without-nsp", str(without), *flags])


def test_classification_benchmark_with_a_pretrained_model_dir(wikitext_run, tmp_path) -> None:
    bench = load_script("benchmarks/bert_classification.py")
    model_dir = str(wikitext_run[0] / "run" / "model")
    flags = ["--smoke", "--no-progress", "--runs", "ours-head", "scratch-full", "--max-length", "32"]
    record = bench.main([*flags, "--model-dir", model_dir])
    assert record["encoder"] == model_dir and record["results"]["ours-head"]["trainable_params"] == 2 * 32 + 2
    scratch = record["results"]["scratch-full"]  # the control: the same shape, fresh weights, all of them trained
    assert scratch["trainable_params"] == scratch["total_params"] > 2 * 32 + 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--model-dir", model_dir, "--runs", "hf-full"])  # the peer needs MiniLM's folder
    with pytest.raises(SystemExit):
        bench.parse_args(["--model-dir", str(tmp_path), "--runs", "ours-full"])  # no model there
