"""Smoke runs of `examples/finetune_lora.py` (every method, exact resume, adapters that load back, flags refused
before training), AdaLoRA through our loop against peft's documented loop, and the LoRA benchmark's record.

The runs use a tiny random BERT with MiniLM's vocabulary (two layers, D=32) saved as a ``--model-dir``: seconds
each. One test builds the real recipe on MiniLM, without training it, for its parameter counts.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from safetensors.torch import load_file

from llmdocs.data.minilm import minilm_dir
from llmdocs.finetuning.classification import EncodedExamples, classification_loss
from llmdocs.finetuning.freezing import trainable_parameters_summary
from llmdocs.finetuning.qlora import quantize_linears
from llmdocs.interop.hf_bert import to_hf
from llmdocs.interop.peft_lora import load_peft_adapter
from llmdocs.models.bert import BertConfig, BertModel
from llmdocs.serialization import save_encoder
from llmdocs.testing import assert_close, assert_equivalent
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training import TrainConfig, build_adamw, build_scheduler, train
from scripts import load_script

peft = pytest.importorskip("peft")
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # peft's notes
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # transformers 5 deprecations inside peft
]

METHODS = ("head", "full", "lora", "qlora", "peft", "adalora", "dora")
R, D, N_LAYERS, N_CLASSES = 16, 32, 2, 2  # the recipe's rank on the tiny BERT: D = d_model, two adapted layers
HEAD = D * N_CLASSES + N_CLASSES  # the new classifier, trained by every method


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("finetune_lora.py")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A random BERT (two layers, D=32, 32 positions) with MiniLM's vocabulary, saved as a --model-dir."""
    tokenizer = WordPieceTokenizer.from_vocab_file(minilm_dir() / "vocab.txt", do_lower_case=True)
    torch.manual_seed(0)
    encoder = BertModel(BertConfig.tiny(vocab_size=tokenizer.vocab_size, n_layers=N_LAYERS, d_model=D))
    return save_encoder(tmp_path_factory.mktemp("tiny") / "bert", encoder, tokenizer)


def smoke(script: ModuleType, tiny_dir: Path, out: Path, *flags: str) -> dict[str, Any]:
    return script.main(["--smoke", "--no-progress", "--model-dir", str(tiny_dir), "--out-dir", str(out), *flags])


@pytest.fixture(scope="module")
def runs(script, tiny_dir, tmp_path_factory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """One smoke run of every method: method -> (its --out-dir, its results)."""
    root = tmp_path_factory.mktemp("runs")
    return {
        method: (
            root / method,
            smoke(script, tiny_dir, root / method, "--method", method, "--json", str(root / method / "copy.json")),
        )
        for method in METHODS
    }


def test_every_method_trains_what_it_should_and_reports_it(runs) -> None:
    lora = N_LAYERS * 2 * R * (D + D)  # A (R, D) and B (D, R) on query and value of each layer
    expected = {
        "head": HEAD,
        "lora": lora + HEAD,
        "qlora": lora + HEAD,
        "peft": lora + HEAD,
        "adalora": N_LAYERS * 2 * 24 * (D + D + 1) + HEAD,  # rank 1.5 R = 24, and Lambda (24, 1)
        "dora": lora + N_LAYERS * 2 * D + HEAD,  # + one magnitude per output feature
    }
    for method, (out, results) in runs.items():
        assert results["finished"] and results["steps"] == 8 and results["method"] == method
        assert 0.0 <= results["test_accuracy"] <= 1.0 and len(results["test_predictions"]) == 16
        assert results["command"].startswith("python examples/finetune_lora.py --smoke")
        saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
        assert saved["test_recall"] == results["test_recall"] and saved == json.loads((out / "copy.json").read_text())
        assert results["trainable_params"] == expected.get(method, results["total_params"]), method
        assert results["peak_step_memory_bytes"] > 0 and results["train_seconds"] > 0
        assert (out / "adapter").is_dir() == (method not in ("head", "full"))
    # the 4-bit weights count as frozen parameters (as peft counts them): QLoRA has LoRA's total
    assert runs["qlora"][1]["total_params"] == runs["lora"][1]["total_params"]
    # QLoRA stores the encoder's linear layers in ~4.13 bits (+ float32 biases) instead of 32
    lora, qlora = runs["lora"][1], runs["qlora"][1]
    assert qlora["base_linear_weights_bytes"] < 0.2 * lora["base_linear_weights_bytes"]
    assert lora["base_weights_bytes"] - qlora["base_weights_bytes"] == (
        lora["base_linear_weights_bytes"] - qlora["base_linear_weights_bytes"]
    )
    # a step of full fine-tuning holds gradients and AdamW moments for every weight: more than LoRA's
    assert runs["full"][1]["peak_step_memory_bytes"] > lora["peak_step_memory_bytes"]
    ranks = runs["adalora"][1]["adalora"]["final_ranks"]  # pruned to the budget: R per matrix on average
    assert len(ranks) == N_LAYERS * 2 and sum(ranks.values()) == N_LAYERS * 2 * R


def logits(model: torch.nn.Module, data: EncodedExamples) -> torch.Tensor:
    """(N, C) logits in eval mode, for our models and peft's."""
    input_ids, attention_mask, _ = data.rows(torch.arange(len(data)))
    with torch.no_grad():
        output = model.eval()(input_ids, attention_mask=attention_mask)
    return getattr(output, "logits", output)


@pytest.mark.numerics
@pytest.mark.filterwarnings("ignore:The following rank_pattern keys:RuntimeWarning")  # peft 0.21 on its AdaLoRA
@pytest.mark.parametrize("method", ["lora", "qlora", "peft", "adalora", "dora"])
def test_the_saved_adapter_loads_back_with_the_trained_logits(script, tiny_dir, runs, tmp_path, method) -> None:
    saved = load_file(runs[method][0] / "adapter" / "adapter_model.safetensors")  # what main() saved
    assert all(".lora_" in key or ".classifier." in key for key in saved)  # adapters and the head, nothing else
    args = script.parse_args(["--smoke", "--no-progress", "--model-dir", str(tiny_dir), "--method", method])
    encoder, tokenizer = script.finetune_bert.load_encoder("minilm", str(tiny_dir))
    data = script.finetune_bert.encode_split(tokenizer, script.load_split(args), args.max_length)
    trained, _ = script.run(args, encoder, data, script.finetune_bert.TASKS[args.task][1])
    folder = script.save_adapter(trained, method, tmp_path / "adapter", base_name="tiny")
    expected = logits(trained, data["test"])  # (16, 2)
    base = script.finetune_bert.build_classifier(encoder, N_CLASSES, "full", args.dropout, seed=123)  # other head
    assert not torch.equal(logits(base, data["test"]), expected)  # the head too must come from the file
    if method in ("lora", "qlora"):
        if method == "qlora":
            quantize_linears(base, "bert.*", double_quant=True)
        load_peft_adapter(base, folder)
        loaded = base
    else:
        loaded = peft.PeftModel.from_pretrained(script.hf_base_model(base, args), folder)
    assert_close(logits(loaded, data["test"]), expected, depth=N_LAYERS)
    again = script.load_adapter(method, folder, encoder, N_CLASSES, args)  # the script's own loader
    assert_close(logits(again, data["test"]), expected, depth=N_LAYERS)
    if method == "lora":  # ours is a peft adapter: peft loads it onto Hugging Face's twin
        twin = to_hf(script.finetune_bert.build_classifier(encoder, N_CLASSES, "full", 0.1, seed=5))
        assert_close(logits(peft.PeftModel.from_pretrained(twin, folder), data["test"]), expected, depth=N_LAYERS)


@pytest.mark.numerics
@pytest.mark.parametrize("method", ["lora", "adalora"])
def test_resume_equals_an_unbroken_run(script, tiny_dir, runs, tmp_path, method) -> None:
    unbroken_dir, unbroken = runs[method]
    stopped = smoke(script, tiny_dir, tmp_path, "--method", method, "--minutes", "1e-6")  # after one step
    assert stopped["steps_done"] == 1 and not stopped["finished"]
    copy = tmp_path.parent / f"{method}-resumed.json"  # --json, like --minutes, may change on resume
    resumed = smoke(script, tiny_dir, tmp_path, "--method", method, "--resume", "--json", str(copy))
    assert resumed["finished"] and resumed["test_predictions"] == unbroken["test_predictions"] and copy.is_file()
    assert [row["loss"] for row in resumed["history"]] == [row["loss"] for row in unbroken["history"]]
    a = load_file(unbroken_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical, dropout included
    config = (json.loads((d / "adapter" / "adapter_config.json").read_text()) for d in (unbroken_dir, tmp_path))
    assert next(config).get("rank_pattern") == next(config).get("rank_pattern")  # AdaLoRA's pruned ranks


def test_bad_flags_fail_before_any_training(script, tiny_dir, tmp_path, capsys) -> None:
    for flags in (
        ["--method", "prefix-tuning"],
        ["--r", "0"],
        ["--lora-alpha", "0"],
        ["--lora-alpha", "nan"],
        ["--lora-dropout", "1"],
        ["--lr", "-1e-3"],
        ["--epochs", "0"],
        ["--minutes", "0"],
        ["--max-length", "2"],
        ["--json", str(tmp_path)],  # a folder
        ["--model-dir", str(tmp_path)],  # no model there
    ):
        with pytest.raises(SystemExit):
            script.parse_args(flags)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        script.parse_args(["--lora-dropout", "1.5"])
    assert "--lora-dropout must be a probability in [0, 1), got 1.5" in capsys.readouterr().err
    out = tmp_path / "never"
    for flags, message in (
        (["--targets", "query"], "--targets query: target 'query' matches no module"),  # Hugging Face's name
        (["--targets", "classifier"], "both targets and modules_to_save"),
        (["--max-length", "64"], "exceeds the encoder's 32 positions"),
    ):
        with pytest.raises(SystemExit, match=message):
            smoke(script, tiny_dir, out, "--method", "peft", *flags)
    assert not out.exists()  # nothing trained, nothing written


def test_minilm_recipe_trains_0_65_percent_in_ours_and_in_peft(script) -> None:
    """The issue's recipe on the real encoder (built, not trained): 148,226 trainable parameters, 0.65%."""
    args = script.parse_args([])
    recipe = (args.method, args.r, args.lora_alpha, args.lora_dropout, args.targets)
    assert recipe == ("lora", 16, 32.0, 0.1, ["q_proj", "v_proj"])
    encoder, _ = script.finetune_bert.load_encoder("minilm")
    ours = script.build_model("lora", encoder, N_CLASSES, args, steps=10)
    theirs = script.build_model("peft", encoder, N_CLASSES, args, steps=10)
    config = theirs.peft_config["default"]
    assert sorted(config.target_modules) == ["query", "value"] and "classifier" in config.modules_to_save
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.1)
    for model in (ours, theirs):
        summary = trainable_parameters_summary(model)
        assert summary.trainable == 6 * 2 * 16 * (384 + 384) + 384 * 2 + 2 == 148_226
        assert round(100 * summary.fraction, 2) == 0.65


@pytest.mark.numerics
def test_adalora_through_our_loop_equals_peft_documented_loop(script) -> None:
    """Our loop with AdaLoRAAllocation = peft's loop (loss from labels with the orthogonality penalty, then
    optimizer.step(), update_and_allocate(step), zero_grad()), in float64: the same adapters and ranks."""
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForSequenceClassification as HFBertForSequenceClassification

    steps = 12

    def make() -> Any:
        torch.manual_seed(0)
        sizes = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
        hf_config = HFBertConfig(**sizes, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        config = peft.AdaLoraConfig(task_type="SEQ_CLS", init_r=4, target_r=2, target_modules=["query", "value"],
                                    total_step=steps, tinit=2, tfinal=3, deltaT=2)  # fmt: skip
        return peft.get_peft_model(HFBertForSequenceClassification(hf_config), config).double()

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 40, (steps, 4, 6), generator=generator)  # (steps, B, T)
    labels = torch.randint(0, 2, (steps, 4), generator=generator)
    mask = torch.ones(4, 6, dtype=torch.long)
    config = TrainConfig(steps=steps, lr=0.05, warmup=2, schedule="cosine", weight_decay=0.01, betas=(0.9, 0.999),
                         grad_clip=1.0, log_every=steps, device="cpu")  # fmt: skip

    ours = make()
    allocation = script.AdaLoRAAllocation(ours)
    with allocation.active():
        train(ours, lambda i: (ids[i], mask, labels[i]), classification_loss, config, progress=False)

    reference = make()
    optimizer = build_adamw(reference, config.lr, config.weight_decay, config.betas)
    scheduler = build_scheduler(optimizer, config)
    params = [p for p in reference.parameters() if p.requires_grad]
    for step in range(steps):
        reference(input_ids=ids[step], attention_mask=mask, labels=labels[step]).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        reference.base_model.update_and_allocate(step)
        optimizer.zero_grad()

    trained = {n: p for n, p in ours.named_parameters() if p.requires_grad}
    for name, weight in reference.named_parameters():
        if weight.requires_grad:
            assert_equivalent(trained[name], weight, depth=steps)
    assert allocation.rank_pattern() == reference.peft_config["default"].rank_pattern
    assert sum(sum(keep) for keep in allocation.rank_pattern().values()) == 2 * 2 * 2  # target_r per matrix


def test_benchmark_smoke_writes_a_well_formed_record(tiny_dir, tmp_path) -> None:
    bench = load_script("benchmarks/lora_classification.py")
    target = tmp_path / "record.json"
    flags = ["--smoke", "--no-progress", "--model-dir", str(tiny_dir), "--json", str(target)]
    record = bench.main([*flags, "--runs", "head", "lora", "peft", "--seeds", "3", "4"])
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(json.dumps(record))
    assert record["command"].startswith("python examples/benchmarks/lora_classification.py --smoke")
    assert list(record["results"]) == ["head", "lora", "peft"] and record["encoder"] == str(tiny_dir)
    assert record["seeds"] == {"head": [3], "lora": [3, 4], "peft": [3, 4]}
    assert record["split"]["test"]["texts"] == 16 and record["recipes"]["lora"]["lr"] == 2e-3
    for method, result in record["results"].items():
        seeds = record["seeds"][method]
        assert list(result["runs"]) == [str(s) for s in seeds] and len(result["test_accuracy"]) == len(seeds)
        spread = result["test_accuracy_spread"]
        assert spread["min"] <= spread["mean"] <= spread["max"] and spread["stdev"] >= 0.0
        for run in result["runs"].values():
            assert len(run["load_average_before"]) == len(run["load_average_after"]) == 3
            assert run["peak_step_memory_bytes"] > 0 and run["base_weights_bytes"] > 0
    assert record["results"]["lora"]["trainable_params"] == record["results"]["peft"]["trainable_params"]
    for flags in (["--seeds", "0", "0"], ["--lr", "lora"], ["--lr", "lora=-1"], ["--runs", "lora", "lora"]):
        with pytest.raises(SystemExit):  # before any training
            bench.parse_args(["--smoke", "--model-dir", str(tiny_dir), *flags])


def files_of(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` and its modification time: what a refused command must leave as it was."""
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.fixture
def nothing_built(script, monkeypatch) -> None:
    """Loading the encoder fails the test: the checks under test must end the script before anything is built."""

    def load_encoder(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the encoder was loaded before the flags were refused")

    monkeypatch.setattr(script.finetune_bert, "load_encoder", load_encoder)


def test_run_args_json_records_what_defines_the_run(runs, tiny_dir) -> None:
    saved = json.loads((runs["lora"][0] / "run_args.json").read_text(encoding="utf-8"))
    assert set(saved) == {
        *("method", "task", "model", "model_dir", "r", "lora_alpha", "lora_dropout", "targets", "dropout"),
        *("max_length", "batch_size", "epochs", "seed", "split_seed", "lr", "warmup", "weight_decay", "select"),
        "smoke",  # --smoke takes the first texts of the split only
    }
    assert (saved["method"], saved["r"], saved["lora_alpha"], saved["targets"]) == (
        "lora",
        R,
        32.0,
        ["q_proj", "v_proj"],
    )
    assert (saved["model_dir"], saved["lr"], saved["max_length"], saved["smoke"]) == (str(tiny_dir), 2e-3, 32, True)


def test_resume_refuses_other_settings_in_one_line_before_building_anything(
    script, tiny_dir, runs, nothing_built
) -> None:
    """The newcomer's repro: --resume --lora-alpha 64 trained A and B with 32 and saved an adapter that says 64."""
    out = runs["lora"][0]  # a finished run: its checkpoints and run_args.json
    before = files_of(out)
    for flags, message in (
        (["--lora-alpha", "64"], "--lora-alpha 32.0 -> 64.0"),
        (["--lora-dropout", "0.2"], "--lora-dropout 0.1 -> 0.2"),
        (["--dropout", "0"], "--dropout 0.1 -> 0.0"),
        (["--max-length", "16"], "--max-length 32 -> 16"),
        (["--r", "8", "--targets", "q_proj"], "--r 16 -> 8; --targets q_proj v_proj -> q_proj"),
        (["--method", "peft"], "--method lora -> peft"),
        (["--lr", "1e-3", "--seed", "1"], "--lr 0.002 -> 0.001; --seed 0 -> 1"),
    ):
        with pytest.raises(SystemExit) as refused:
            smoke(script, tiny_dir, out, "--method", "lora", "--resume", *flags)
        text = str(refused.value.code)
        assert message in text and "\n" not in text, text
        assert text.startswith(f"error: --resume continues the run in {out} with its settings"), text
        assert text.endswith("(a resume may change only --minutes, --threads, --no-progress, --json, --device)")
    with pytest.raises(SystemExit) as refused:  # without --smoke: its data and its recipe differ
        script.main(["--no-progress", "--model-dir", str(tiny_dir), "--out-dir", str(out), "--resume"])
    assert "--epochs 2 -> 3; --batch-size 8 -> 32" in str(refused.value.code)
    assert str(refused.value.code).count("--smoke on -> off") == 1
    assert files_of(out) == before  # nothing written


def test_out_dir_must_suit_resume(script, tiny_dir, runs, tmp_path, nothing_built) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(
        SystemExit, match=f"^error: --resume: there is nothing to resume in {re.escape(str(empty))} .*drop --resume"
    ):
        smoke(script, tiny_dir, empty, "--resume")
    assert not empty.exists()
    finished = runs["lora"][0]
    with pytest.raises(SystemExit, match="already holds the checkpoints of a run: continue it with --resume, or give"):
        smoke(script, tiny_dir, finished)  # the loop would refuse it too, with a traceback, after building
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    with pytest.raises(SystemExit, match=f"^error: --out-dir {re.escape(str(file))} is a file, not a folder"):
        smoke(script, tiny_dir, file)
    with pytest.raises(
        SystemExit, match=re.escape(f"error: --out-dir {file / 'run'} is inside {file}, which is a file")
    ):
        smoke(script, tiny_dir, file / "run")


def test_r_past_the_rank_of_a_targeted_layer_is_refused_in_flag_terms(script, tiny_dir, tmp_path) -> None:
    """A rank above min(d_in, d_out) adds nothing but memory (--r 100000 ran away with it): refused with the layer's
    shape and the largest --r, before anything is built; the limit itself is accepted."""
    config = BertConfig.tiny(n_layers=N_LAYERS, d_model=D)  # q_proj, v_proj: (32, 32); the feed-forward (128, 32)
    for flags, largest in ((["--method", "lora"], D), (["--method", "adalora"], 21)):  # AdaLoRA starts at 1.5 r
        script.check_lora_flags(config, script.parse_args(["--smoke", *flags, "--r", str(largest)]))
        with pytest.raises(SystemExit) as refused:
            script.check_lora_flags(config, script.parse_args(["--smoke", *flags, "--r", str(largest + 1)]))
        text = str(refused.value.code)
        assert "exceeds the rank of bert.layers.0.self_attn.q_proj, whose weight (d_out, d_in) = (32, 32)" in text
        assert text.endswith(f"the largest --r for --targets q_proj v_proj is {largest}"), text
    assert "starts adalora at rank 33" in text  # ceil(1.5 * 22)
    wide = script.parse_args(["--smoke", "--r", "33", "--targets", "fc1", "fc2"])  # weights (128, 32), (32, 128)
    with pytest.raises(SystemExit, match=re.escape("bert.layers.0.ff.fc1, whose weight (d_out, d_in) = (128, 32) has")):
        script.check_lora_flags(config, wide)
    out = tmp_path / "huge"
    with pytest.raises(
        SystemExit, match=r"--r 100000 exceeds the rank of .* the largest --r for --targets q_proj v_proj is 32$"
    ):
        smoke(script, tiny_dir, out, "--r", "100000")
    assert not out.exists()


def test_lora_flags_are_refused_for_head_and_full(script, capsys) -> None:
    for flags, message in (
        (["--method", "head", "--r", "16"], "--r applies to the LoRA methods only (lora, qlora, peft, adalora, dora)"),
        (["--method", "full", "--lora-alpha", "8", "--targets", "q_proj"], "--lora-alpha, --targets apply to the LoRA"),
        (["--lora-dropout", "0", "--method", "head"], "--lora-dropout applies to the LoRA methods only"),
    ):
        with pytest.raises(SystemExit):
            script.parse_args(flags)
        assert message in capsys.readouterr().err
    assert script.parse_args(["--method", "head", "--smoke"]).r == 16  # not given: the default is left alone
    assert script.parse_args(["--method", "lora", "--r", "4"]).r == 4


def test_messages_of_the_newcomer_pass(script, capsys, monkeypatch) -> None:
    """--lr's help says its default once; a missing --model-dir "does not exist"; --device cuda without CUDA is
    one line."""
    help_text = " ".join(script.build_parser().format_help().split())  # wrapped to the terminal: one line
    options = help_text.rpartition("--lr LR")[2].partition("--batch-size")[0]
    assert options.count("(default:") == 1 and "None" not in options and "lora 0.002" in options
    with pytest.raises(SystemExit) as refused:
        script.parse_args(["--model-dir", "/nonexistent/bert"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and "--model-dir /nonexistent/bert does not exist" in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in (("cuda", "CUDA is not available"), ("tpu", "device must be one of auto, cpu, cuda, mps")):
        with pytest.raises(SystemExit):
            script.parse_args(["--device", device])
        assert f"error: --device {device}: " in (err := capsys.readouterr().err) and message in err
