"""Fine-tuning BERT for classification: regimes, batches from texts, loss, metrics, best-epoch choice, the script."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmdocs.data.minilm import minilm_dir
from llmdocs.finetuning import trainable_parameters_summary
from llmdocs.finetuning.classification import (
    ClassificationBatches,
    EncodedExamples,
    accuracy,
    classification_loss,
    classification_metrics,
    classifier_from_encoder,
    encode_examples,
    finetune,
    minilm_encoder,
    predict,
    set_regime,
)
from llmdocs.interop.hf_bert import state_dict_to_hf
from llmdocs.models.bert import BertConfig, BertForSequenceClassification, BertModel
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training import TrainConfig
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "a", "b", "c", "d"]


def toy_examples(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Separable: label 1 iff the text says "good" (else "bad"), among 0-6 filler words: lengths vary."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        words = [rng.choice("abcd") for _ in range(rng.randint(0, 6))]
        words.insert(rng.randint(0, len(words)), "good" if label else "bad")
        examples.append((" ".join(words), label))
    return examples


def tiny_classifier(n_classes: int = 2, n_layers: int = 2) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig.tiny(vocab_size=len(VOCAB), n_layers=n_layers), n_classes)


def test_regimes_train_exactly_the_intended_parameters() -> None:
    model = BertForSequenceClassification(BertConfig.tiny(vocab_size=64), n_classes=3)  # D=32, F=128, N=2
    D, F, V, T_max, C = 32, 128, 64, 32, 3
    classifier = D * C + C
    pooler = D * D + D
    layer = 4 * (D * D + D) + 2 * 2 * D + (D * F + F) + (F * D + D)  # q, k, v, out; two LayerNorms; the FFN
    embeddings = V * D + T_max * D + 2 * D + 2 * D  # tokens, positions, segments, LayerNorm
    assert trainable_parameters_summary(model).total == embeddings + 2 * layer + pooler + classifier == 29763

    assert set_regime(model, "head") == ["classifier.weight", "classifier.bias"]
    assert trainable_parameters_summary(model).trainable == classifier  # the pooler stays frozen
    names = set_regime(model, "last-block")
    assert trainable_parameters_summary(model).trainable == classifier + pooler + layer
    assert all(n.startswith(("classifier.", "bert.pooler.", "bert.layers.1.")) for n in names)
    assert set_regime(model, "full") == [n for n, _ in model.named_parameters()]
    with pytest.raises(ValueError, match="regime must be one of"):
        set_regime(model, "all")
    with pytest.raises(TypeError, match="BertForSequenceClassification"):
        set_regime(torch.nn.Linear(2, 2), "head")  # type: ignore[arg-type]


def test_classifier_from_encoder_copies_the_encoder() -> None:
    encoder = BertModel(BertConfig.tiny(dropout=0.1))
    model = classifier_from_encoder(encoder, n_classes=4, dropout=0.0)
    assert model.config.dropout == 0.0 and model.classifier.out_features == 4
    assert all(
        torch.equal(a, b) for a, b in zip(model.bert.state_dict().values(), encoder.state_dict().values(), strict=True)
    )
    with pytest.raises(TypeError, match="BertModel"):
        classifier_from_encoder(model)  # type: ignore[arg-type]


def test_minilm_encoder_holds_the_packaged_weights_pooler_included() -> None:
    encoder, tokenizer = minilm_encoder()
    packaged = load_file(minilm_dir() / "model.safetensors")
    ours = state_dict_to_hf(encoder.state_dict())
    assert "pooler.dense.weight" in packaged and set(ours) == set(packaged) - {"embeddings.position_ids"}
    assert all(torch.equal(ours[name], packaged[name]) for name in ours)  # bit-identical copies
    assert tokenizer.encode("Free entry!")["input_ids"] == [101, 2489, 4443, 999, 102]


def test_encode_examples_pads_truncates_and_checks() -> None:
    tokenizer = WordPieceTokenizer(VOCAB)
    data = encode_examples(tokenizer, [("good a b c d", 1), ("bad", 0)], max_length=4)
    assert data.input_ids.tolist() == [[2, 5, 7, 3], [2, 6, 3, 0]] and data.attention_mask[1].tolist() == [1, 1, 1, 0]
    assert len(data) == 2 and data.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="empty"):
        encode_examples(tokenizer, [])
    with pytest.raises(ValueError, match="label"):
        encode_examples(tokenizer, [("good", -1)])
    for bad in (["good", "bad"], [(1, 0)], [("good", 1, 0)]):  # texts without labels, a non-text, a triple
        with pytest.raises(TypeError, match=r"examples must be \(text, label\) pairs"):
            encode_examples(tokenizer, bad)
    with pytest.raises(ValueError, match="max_length=1"):
        encode_examples(tokenizer, [("good", 1)], max_length=1)
    with pytest.raises(ValueError, match=r"must be \(N, T\), \(N, T\) and \(N,\)"):
        EncodedExamples(data.input_ids, data.attention_mask, data.labels[:1])


def test_batches_are_a_pure_function_of_the_index_and_cut_to_the_longest_text() -> None:
    data = encode_examples(WordPieceTokenizer(VOCAB), toy_examples(100))
    batches = ClassificationBatches(data, batch_size=8, seed=3)
    assert len(batches) == 12
    fresh = ClassificationBatches(data, batch_size=8, seed=3)
    for index in (0, 5, 13, 40, 5):  # any order, any object: the same batch
        assert all(torch.equal(a, b) for a, b in zip(batches(index), fresh(index), strict=True))
    ids, mask, labels = batches(13)
    assert ids.shape == mask.shape and ids.shape[0] == 8 and labels.shape == (8,)
    assert mask[:, -1].any() and ids.shape[1] < data.input_ids.shape[1]  # no all-padding column
    epoch = torch.cat([batches.epoch_order(1)])
    assert len(set(epoch.tolist())) == 96  # an epoch reads distinct rows (the last 4 are dropped)
    assert not torch.equal(batches.epoch_order(0), batches.epoch_order(1))
    padded = sum(b[0].numel() for b in map(batches, range(12)))
    unsorted = ClassificationBatches(data, 8, seed=3, group_by_length=False)
    assert padded < sum(b[0].numel() for b in map(unsorted, range(12)))  # grouping by length pads less
    with pytest.raises(ValueError, match="batch_size"):
        ClassificationBatches(data, batch_size=101)


def test_accuracy_and_metrics_by_hand() -> None:
    predictions, labels = torch.tensor([1, 0, 0, 0, 1, 0]), torch.tensor([1, 1, 0, 0, 0, 0])
    assert accuracy(predictions, labels) == pytest.approx(4 / 6)
    m = classification_metrics(predictions, labels, ("ham", "spam"))
    assert m["precision_spam"] == 0.5 and m["recall_spam"] == 0.5 and m["f1_spam"] == 0.5  # TP 1, FP 1, FN 1
    assert m["precision_ham"] == 0.75 and m["recall_ham"] == 0.75  # TP 3, FP 1, FN 1
    none = classification_metrics(torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 1, 1]), ("ham", "spam"))
    assert none["precision_spam"] == 0.0 and none["f1_spam"] == 0.0  # never predicted: 0, as scikit-learn
    with pytest.raises(ValueError, match="same, non-empty"):
        accuracy(torch.tensor([1, 0]), torch.tensor([1]))


def test_finetuning_learns_a_separable_toy_task_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    tokenizer = WordPieceTokenizer(VOCAB)
    train_data = encode_examples(tokenizer, toy_examples(64))
    validation = encode_examples(tokenizer, toy_examples(32, seed=1))
    model = tiny_classifier()
    batches = ClassificationBatches(train_data, batch_size=16)
    config = TrainConfig(steps=24, lr=1e-2, warmup=2, log_every=4, eval_every=4, device="cpu", out_dir=str(tmp_path))
    history, chosen = finetune(model, batches, config, validation, select="best", progress=False)
    losses = [row["loss"] for row in history if "loss" in row]
    assert losses[-1] < 0.5 * losses[0]
    scores = {row["step"]: row["val_accuracy"] for row in history if "val_accuracy" in row}
    assert len(scores) == 6 and max(scores.values()) == 1.0
    assert chosen == max(step for step, score in scores.items() if score == max(scores.values()))  # later on a tie
    assert accuracy(predict(model, validation), validation.labels) == 1.0
    best = load_file(tmp_path / "best.safetensors")
    assert all(torch.equal(best[n], p) for n, p in model.named_parameters())  # the chosen weights are in place

    again = tiny_classifier()  # resuming the finished run loads its checkpoint, then the chosen weights
    finetune(again, batches, config, validation, select="best", resume=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), model.parameters(), strict=True))


def test_head_regime_leaves_the_encoder_untouched() -> None:
    tokenizer = WordPieceTokenizer(VOCAB)
    data = encode_examples(tokenizer, toy_examples(32))
    model = tiny_classifier()
    set_regime(model, "head")
    encoder_before = {n: p.clone() for n, p in model.bert.named_parameters()}
    classifier_before = model.classifier.weight.clone()
    config = TrainConfig(steps=4, lr=1e-2, warmup=0, device="cpu")
    history, chosen = finetune(model, ClassificationBatches(data, 8), config, progress=False)
    assert chosen == history[-1]["step"] == 4  # select="last"
    assert all(torch.equal(p, encoder_before[n]) for n, p in model.bert.named_parameters())
    assert not torch.equal(model.classifier.weight, classifier_before)
    with pytest.raises(ValueError, match="select must be"):
        finetune(model, ClassificationBatches(data, 8), config, select="best", progress=False)  # no validation
    loss, n_tokens = classification_loss(model, ClassificationBatches(data, 8)(0))
    assert loss.ndim == 0 and n_tokens == int(ClassificationBatches(data, 8)(0)[1].sum())
    ids, mask, labels = ClassificationBatches(data, 8)(0)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 2\)"):  # a 3-class label, 2 classes
        classification_loss(model, (ids, mask, torch.full_like(labels, 2)))


@pytest.mark.numerics
def test_loss_and_predictions_equal_hugging_faces_on_the_same_weights() -> None:
    """The benchmark's peer goes through the same loss and prediction code: both must compute the same numbers."""
    from llmdocs.interop.hf_bert import to_hf
    from llmdocs.testing import assert_equivalent

    ours = tiny_classifier(n_classes=3).eval().double()
    theirs = to_hf(ours)  # eval, float64
    data = encode_examples(WordPieceTokenizer(VOCAB), [(text, label % 3) for text, label in toy_examples(12)])
    batch = ClassificationBatches(data, batch_size=12)(0)  # padded rows included
    assert_equivalent(classification_loss(ours, batch)[0], classification_loss(theirs, batch)[0], depth=2)
    assert torch.equal(predict(ours, data, batch_size=5), predict(theirs, data, batch_size=5))


def test_finetune_script_smoke(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "examples/finetune_bert.py",
        "--smoke",
        "--mode",
        "head",
        "--select",
        "best",
        "--no-progress",
    ]
    result = subprocess.run([*command, "--out-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "trainable 770 of 22,713,986" in result.stdout
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["finished"] and results["trainable_params"] == 770 and 0.0 <= results["test_accuracy"] <= 1.0
    assert results["command"].startswith("python examples/finetune_bert.py --smoke")
    assert (out / "best.safetensors").is_file() and (out / "metrics.jsonl").is_file()


def test_the_benchmark_record_holds_every_run_and_its_command() -> None:
    record = json.loads((ROOT / "llmdocs/records/bert_sms_spam.json").read_text(encoding="utf-8"))
    assert record["command"].startswith("python examples/benchmarks/bert_classification.py")
    assert list(record["results"]) == ["tfidf", "ours-head", "ours-last-block", "ours-full", "hf-head", "hf-full"]
    for run in record["results"].values():
        assert 0.5 < run["test_accuracy"] <= 1.0 and run["train_seconds"] > 0 and run["trainable_params"] > 0
        assert len(run["load_average_before"]) == 3  # the machine is shared: the load is part of the measurement
    assert record["results"]["ours-head"]["trainable_params"] == 770 == record["results"]["hf-head"]["trainable_params"]


def test_benchmark_smoke_measures_the_baseline_ours_and_the_peer(tmp_path: Path) -> None:
    script = load_script("benchmarks/bert_classification.py")
    target = tmp_path / "record.json"
    runs = ["tfidf", "ours-head", "hf-head"]
    record = script.main(["--smoke", "--no-progress", "--runs", *runs, "--json", str(target)])
    assert list(record["results"]) == runs
    assert json.loads(target.read_text(encoding="utf-8"))["command"] == record["command"]  # tuples become lists
    assert record["recipes"]["head"]["lr"] == 0.1 and record["split"]["test"]["texts"] == 16
    ours, peer = record["results"]["ours-head"], record["results"]["hf-head"]
    assert ours["trainable_params"] == peer["trainable_params"] == 770 and ours["steps"] == peer["steps"] == 8
