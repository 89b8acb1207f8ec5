"""Bad input to the BERT chapter's API gets an error that names the argument (or the file) and what was expected,
never a deep traceback from torch or a silent wrong answer. One test per edge case of a newcomer's break-test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from llmdocs.finetuning.classification import classification_loss, encode_examples
from llmdocs.generation.fill_mask import fill_mask
from llmdocs.models.bert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel
from llmdocs.models.sentence_encoder import semantic_search
from llmdocs.serialization import WEIGHTS_DTYPES, load_encoder, save_encoder
from llmdocs.tokenizers import WordPieceTokenizer
from llmdocs.training.masked_lm import MAX_VOCAB_ID, continuation_mask, mlm_accuracy, mlm_loss
from scripts import load_script

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat"]
ROOT = Path(__file__).resolve().parents[1]
GPT_FOLDER = ROOT / "llmdocs" / "pretrained" / "gpt-shakespeare-char"


@pytest.fixture
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(VOCAB)


@pytest.fixture
def bert() -> BertForPreTraining:
    torch.manual_seed(0)
    return BertForPreTraining(BertConfig.tiny(len(VOCAB), n_layers=1))


# ---- 1. fill_mask needs a masked-language model ------------------------------------------------------------------


def test_fill_mask_refuses_a_model_without_an_mlm_head(bert, tokenizer) -> None:
    config = bert.config
    for model, message in (
        (None, "model must be a masked-language model such as BertForPreTraining .* got NoneType"),
        (BertModel(config), "model is a BertModel, which has no masked-LM head .* needs a BertForPreTraining"),
        (BertForSequenceClassification(config, n_classes=2), "model is a BertForSequenceClassification, which has no"),
        (torch.nn.Linear(2, 2), "model must be a masked-language model .* got Linear"),
    ):
        with pytest.raises(TypeError, match=message):
            fill_mask(model, tokenizer, "the [MASK]")
    with pytest.raises(TypeError, match="tokenizer must be the model's WordPieceTokenizer, got NoneType"):
        fill_mask(bert, None, "the [MASK]")
    assert len(fill_mask(bert, tokenizer, "the [MASK]", top_k=2)[0]) == 2  # the valid call is unchanged


# ---- 2. save_encoder into the working directory; load_encoder on a damaged folder ----------------------------------


def test_save_encoder_refuses_the_working_directory_and_the_folders_that_hold_it(
    bert, tokenizer, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for directory in (".", "", str(tmp_path), "sub/..", ".."):
        with pytest.raises(ValueError, match=r"directory=.* is (the current working directory|a folder that holds)"):
            save_encoder(directory, bert, tokenizer)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary folder left
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ValueError, match=r"directory='\.' is the current working directory: .* e\.g\. 'model'"):
        save_encoder(".", bert, tokenizer)
    path = save_encoder("model", bert, tokenizer)  # a relative sub-folder works, and is replaced as before
    assert path == Path("model") and (tmp_path / "model" / "vocab.txt").is_file()
    save_encoder("model", bert, tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes.txt"]


def edit_config(key: str, value: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if value is None:
            del saved["config"][key]
        else:
            saved["config"][key] = value
        (folder / "config.json").write_text(json.dumps(saved), encoding="utf-8")

    return edit


def truncate(name: str, keep: float) -> Callable[[Path], None]:
    def cut(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return cut


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


WEIGHTS, CONFIG = r"model\.safetensors", r"config\.json"
DAMAGES: list[tuple[str, Callable[[Path], None], type[Exception], str]] = [
    ("no vocab", remove("vocab.txt"), FileNotFoundError, r"vocab\.txt is missing"),
    ("no weights", remove("model.safetensors"), FileNotFoundError, rf"has no {WEIGHTS}"),
    ("weights cut", truncate("model.safetensors", 0.5), ValueError, rf"{WEIGHTS} is not a readable safetensors"),
    ("weights empty", truncate("model.safetensors", 0.0), ValueError, rf"{WEIGHTS} is not a readable"),
    ("config cut", truncate("config.json", 0.5), ValueError, rf"{CONFIG} is not valid JSON"),
    ("config bytes", write("config.json", b"\xff\xfe"), ValueError, rf"{CONFIG} is not valid JSON"),
    ("config list", write("config.json", b"[1]"), ValueError, rf"{CONFIG} must hold a JSON object"),
    ("no settings", write("config.json", b'{"model": "BertModel"}'), ValueError, rf"{CONFIG} lacks the model's"),
    ("unknown key", edit_config("colour", 1), ValueError, rf"{CONFIG}: 'config' does not fit BertConfig; unknown"),
    ("no d_model", edit_config("d_model", None), ValueError, rf"{WEIGHTS} does not fit .*{CONFIG} lacks \['d_model'\]"),
    ("bad d_model", edit_config("d_model", 33), ValueError, rf"{CONFIG}: d_model=33 is not divisible by n_heads"),
    ("meta cut", truncate("meta.json", 0.5), ValueError, r"meta\.json is not valid JSON"),
    ("vocab bytes", write("vocab.txt", b"\xff\xfe"), ValueError, r"vocab\.txt is not UTF-8"),
    ("vocab short", write("vocab.txt", b"[PAD]\n"), ValueError, r"vocab\.txt: .*special tokens"),
]


@pytest.mark.parametrize(("damage", "error", "message"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES])
def test_load_encoder_names_the_damaged_file(bert, tokenizer, tmp_path, damage, error, message) -> None:
    folder = save_encoder(tmp_path / "bert", bert, tokenizer)
    damage(folder)
    with pytest.raises(error, match=message):
        load_encoder(folder)


def test_load_encoder_says_which_model_a_folder_holds_instead() -> None:
    with pytest.raises(ValueError, match=r"gpt-shakespeare-char holds a GPT, not a BERT .*load_pretrained"):
        load_encoder(GPT_FOLDER)


# ---- 3. mlm_loss needs logits with a vocabulary dimension ----------------------------------------------------------


def test_mlm_loss_refuses_0d_and_empty_vocabulary_logits() -> None:
    for logits, labels in ((torch.tensor(1.0), torch.tensor(1)), (torch.zeros(2, 0), torch.tensor([0, 1]))):
        for fn in (mlm_loss, mlm_accuracy):
            with pytest.raises(ValueError, match=r"logits must have a last dimension of V >= 1 .* got shape"):
                fn(logits, labels)
    with pytest.raises(ValueError, match=r"logits \(2, 3, 5\) needs labels \(2, 3\), got \(3, 2\)"):
        mlm_loss(torch.zeros(2, 3, 5), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"needs labels \(2,\), got \(\)"):
        mlm_loss(torch.zeros(2, 5), torch.tensor(1))
    assert mlm_loss(torch.zeros(5), torch.tensor(1)).item() == pytest.approx(
        1.6094, abs=1e-4
    )  # not rounding: log 5 to 4 decimals


# ---- 4. continuation_mask needs ordered tokens and sane ids ------------------------------------------------------


def test_continuation_mask_refuses_huge_ids_and_unordered_vocabularies() -> None:
    with pytest.raises(ValueError, match=r"ids must be at most MAX_VOCAB_ID=16,777,215, got 1,000,000,000,000"):
        continuation_mask({"[PAD]": 0, "##s": 10**12})  # used to try to allocate a terabyte
    assert len(continuation_mask({"a": MAX_VOCAB_ID})) == MAX_VOCAB_ID + 1  # the largest accepted
    with pytest.raises(TypeError, match="got set: a set has no order, so its tokens have no ids"):
        continuation_mask({"[PAD]", "##s"})  # used to number the tokens in hash order
    with pytest.raises(TypeError, match=r"vocab must be the tokens in id order .* got generator"):
        continuation_mask(token for token in ["[PAD]", "##s"])
    assert continuation_mask(("a", "##b")).tolist() == [False, True]  # a tuple is a sequence


# ---- 5. encode_examples needs a list of pairs and an int max_length ----------------------------------------------


def test_encode_examples_refuses_generators_and_non_int_max_length(tokenizer) -> None:
    with pytest.raises(TypeError, match=r"examples must be a list of .* got generator: .* pass list"):
        encode_examples(tokenizer, ((text, 1) for text in ["the cat"]))
    with pytest.raises(TypeError, match=r"examples must be a list of .* got str"):
        encode_examples(tokenizer, "the cat")
    for bad in (8.0, 8.5, "8", None, True):
        with pytest.raises(TypeError, match=rf"max_length must be an int .* got {type(bad).__name__}"):
            encode_examples(tokenizer, [("the cat", 1)], max_length=bad)
    with pytest.raises(TypeError, match="tokenizer must be a WordPieceTokenizer, got NoneType"):
        encode_examples(None, [("the cat", 1)])
    data = encode_examples(tokenizer, (("the cat", 1), ("sat", 0)), max_length=8)  # a tuple is a sequence
    assert data.input_ids.tolist() == [[2, 5, 6, 3], [2, 7, 3, 0]]


# ---- 6. classification_loss needs integer class ids -------------------------------------------------------------


def test_classification_loss_refuses_float_bool_and_list_labels() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.tiny(len(VOCAB), n_layers=1), n_classes=2)
    ids, mask = torch.tensor([[2, 5, 3, 0], [2, 6, 7, 3]]), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    for labels, kind in (
        (torch.tensor([1.0, 0.0]), r"a torch\.float32 tensor"),
        (torch.tensor([True, False]), r"a torch\.bool tensor"),
        ([1, 0], "list"),
    ):
        with pytest.raises(TypeError, match=rf"labels \(the batch's third item\) must be an integer tensor .*{kind}"):
            classification_loss(model, (ids, mask, labels))
    for labels in (torch.tensor([1, 0, 1]), torch.tensor([[1], [0]])):
        with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(2,\)"):
            classification_loss(model, (ids, mask, labels))
    with pytest.raises(TypeError, match=r"batch must be \(input_ids, attention_mask, labels\), got 2 items"):
        classification_loss(model, (ids, mask))
    loss, n_tokens = classification_loss(model, (ids, mask, torch.tensor([1, 0])))
    assert torch.equal(classification_loss(model, (ids, mask, torch.tensor([1, 0], dtype=torch.int32)))[0], loss)
    assert n_tokens == 7


# ---- 7. semantic_search names its own parameters and refuses NaN --------------------------------------------------


def test_semantic_search_names_its_parameters_and_refuses_nan() -> None:
    queries, corpus = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(TypeError, match=r"query_embeddings must be a float tensor .* got list"):
        semantic_search([[0.0] * 4], corpus)
    with pytest.raises(TypeError, match=r"corpus_embeddings must be a float tensor .* got a torch\.int64 tensor"):
        semantic_search(queries, corpus.long())
    with pytest.raises(ValueError, match=r"query_embeddings and corpus_embeddings must be 2-D with the same width"):
        semantic_search(queries, torch.randn(3, 5))
    for bad in (float("nan"), float("inf")):
        broken = corpus.clone()
        broken[1, 2] = bad
        with pytest.raises(ValueError, match=r"corpus_embeddings has NaN or infinite values in 1 row\(s\), .*\[1\]"):
            semantic_search(queries, broken)  # NaN used to rank first, with a NaN score
        with pytest.raises(ValueError, match=r"query_embeddings has NaN or infinite values"):
            semantic_search(broken, queries)


# ---- 8. weights_dtype: the supported dtypes only ------------------------------------------------------------------


def test_weights_dtype_outside_the_supported_ones_is_refused(bert, tokenizer, tmp_path) -> None:
    for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):  # used to save weights rounded to 2-3 bits, silently
        with pytest.raises(ValueError, match=rf"weights_dtype={dtype} is not supported: .*torch\.float16"):
            save_encoder(tmp_path / "m", bert, tokenizer, weights_dtype=dtype)
    with pytest.raises(TypeError, match=r"weights_dtype must be a floating torch\.dtype, one of torch\.float32, "):
        save_encoder(tmp_path / "m", bert, tokenizer, weights_dtype="float16")
    assert not (tmp_path / "m").exists()
    for dtype in WEIGHTS_DTYPES:
        loaded = load_encoder(save_encoder(tmp_path / "m", bert, tokenizer, weights_dtype=dtype))[0]
        assert loaded.bert.embeddings.tok_embed.weight.dtype == torch.float32


# ---- 9. the fine-tuning scripts refuse a folder that holds no BERT, in one line --------------------------------------


@pytest.mark.parametrize("script", ["finetune_bert.py", "benchmarks/bert_classification.py"])
def test_scripts_refuse_a_model_dir_that_holds_a_gpt_in_one_line(script: str, capsys) -> None:
    module = load_script(script)
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--model-dir", str(GPT_FOLDER)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a GPT, not a BERT" in err and "bert-wikitext2" in err  # no usage, no trace


def test_finetune_script_ends_with_one_line_on_a_damaged_bert(tmp_path) -> None:
    finetune = load_script("finetune_bert.py")
    folder = tmp_path / "bert"
    shutil.copytree(ROOT / "llmdocs" / "pretrained" / "bert-wikitext2", folder)
    truncate("model.safetensors", 0.5)(folder)
    finetune.parse_args(["--model-dir", str(folder)])  # its config.json is fine: the weights are read later
    with pytest.raises(SystemExit, match=r"^error: --model-dir .*model\.safetensors is not a readable safetensors"):
        finetune.load_encoder("minilm", str(folder))
