"""BERT from scratch equals Hugging Face's BertModel, BertForPreTraining and BertForSequenceClassification.

Equivalence is proven in float64 (llmdocs.testing.assert_equivalent) both ways: our weights copied into a Hugging
Face model, and a random Hugging Face model (built from a transformers.BertConfig, no download) copied into ours.
Batches are padded and carry segment ids. Invariants: padding leaves the real tokens' outputs unchanged, the MLM
decoder is the token embedding, parameter counts match; all-MiniLM-L6-v2's weights give the same hidden states.
"""

from __future__ import annotations

import copy
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import json
from collections.abc import Iterator

import pytest
import torch

pytest.importorskip("transformers")
import transformers
from weights import perturb

from llmdocs.interop import hf_bert
from llmdocs.models.bert import BertConfig, BertEmbeddings, BertForPreTraining, BertForSequenceClassification, BertModel
from llmdocs.profiling import count_parameters
from llmdocs.testing import assert_equivalent

CONFIGS = {
    "2 layers, 4 heads": BertConfig.tiny(50, n_layers=2, d_model=32, n_heads=4, context_length=16),
    "odd heads D=24 H=3": BertConfig.tiny(37, n_layers=3, d_model=24, n_heads=3, d_ff=40, context_length=12),
    "1 head, 3 segments, eps 1e-6": BertConfig.tiny(
        29, n_layers=1, d_model=16, n_heads=1, type_vocab_size=3, layer_norm_eps=1e-6, pad_token_id=1
    ),
    "ReLU": BertConfig.tiny(40, n_layers=2, d_model=24, n_heads=6, activation="relu"),
}
CLASSES = [BertModel, BertForPreTraining, BertForSequenceClassification]


@pytest.fixture(autouse=True)
def _seed_and_no_grad() -> Iterator[None]:
    torch.manual_seed(0)
    with torch.no_grad():
        yield


def batch(config: BertConfig, B: int = 3, T: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ids (B, T), segment ids and a 1/0 attention mask: row b has T - b real tokens."""
    T = min(T, config.context_length)
    ids = torch.randint(0, config.vocab_size, (B, T))  # (B, T)
    mask = (torch.arange(T)[None, :] < (T - torch.arange(B))[:, None]).long()  # (B, T), 1 = real token
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    segments = torch.randint(0, config.type_vocab_size, (B, T)) * mask  # (B, T)
    return ids, segments, mask


def outputs(model: torch.nn.Module, ids: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor) -> tuple:
    """Our model's outputs as a tuple."""
    out = model(ids, segments, mask)
    return out if isinstance(out, tuple) else (out,)


def hf_outputs(hf_model: torch.nn.Module, ids: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor) -> tuple:
    """The same outputs of a Hugging Face model, in our order."""
    out = hf_model(input_ids=ids, token_type_ids=segments, attention_mask=mask)
    if isinstance(hf_model, transformers.BertModel):
        return out.last_hidden_state, out.pooler_output
    if isinstance(hf_model, transformers.BertForPreTraining):
        return out.prediction_logits, out.seq_relationship_logits
    return (out.logits,)


def make(cls: type, config: BertConfig) -> torch.nn.Module:
    return cls(config, n_classes=3) if cls is BertForSequenceClassification else cls(config)


# ---- mapping and configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_state_dict_round_trip_and_names_match_hf(cls: type) -> None:
    config = CONFIGS["odd heads D=24 H=3"]
    ours = make(cls, config)
    hf_state = hf_bert.state_dict_to_hf(ours.state_dict())
    theirs = hf_bert.to_hf(ours)
    assert set(hf_state) == set(theirs.state_dict())
    back = hf_bert.state_dict_from_hf(theirs.state_dict())
    assert set(back) == set(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_names_in_table() -> None:
    hf = hf_bert.state_dict_to_hf(BertForPreTraining(BertConfig.tiny(n_layers=2)).state_dict())
    for name in (
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.1.attention.self.query.weight",
        "bert.encoder.layer.1.attention.output.dense.bias",
        "bert.encoder.layer.1.attention.output.LayerNorm.weight",
        "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.encoder.layer.1.output.dense.weight",
        "bert.encoder.layer.1.output.LayerNorm.bias",
        "bert.pooler.dense.weight",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.decoder.weight",
        "cls.predictions.bias",
        "cls.seq_relationship.weight",
    ):
        assert name in hf


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_round_trip(name: str) -> None:
    config = CONFIGS[name]
    assert hf_bert.config_from_hf(hf_bert.config_to_hf(config)) == config


def test_presets() -> None:
    minilm = BertConfig.minilm_l6()
    assert (minilm.n_layers, minilm.d_model, minilm.n_heads, minilm.d_ff, minilm.vocab_size) == (
        6,
        384,
        12,
        1536,
        30522,
    )
    assert (minilm.context_length, minilm.type_vocab_size, minilm.layer_norm_eps) == (512, 2, 1e-12)
    base = BertConfig.base()
    assert (base.n_layers, base.d_model, base.n_heads, base.d_ff) == (12, 768, 12, 3072)


# ---- equivalence (float64) ---------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_ours_to_hf_equivalent(cls: type, name: str) -> None:
    config = CONFIGS[name]
    ours = perturb(make(cls, config)).double()
    theirs = hf_bert.to_hf(ours).eval()
    ids, segments, mask = batch(config)
    for a, b in zip(outputs(ours, ids, segments, mask), hf_outputs(theirs, ids, segments, mask), strict=True):
        assert_equivalent(a, b, depth=config.n_layers)


@pytest.mark.numerics
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_hf_to_ours_equivalent(cls: type, name: str) -> None:
    config = CONFIGS[name]
    hf_config = hf_bert.config_to_hf(config, n_classes=3)
    theirs = perturb(getattr(transformers, cls.__name__)(hf_config)).double()
    ours = hf_bert.from_hf(theirs)
    assert type(ours) is cls and not ours.training and ours.config == config
    ids, segments, mask = batch(config)
    for a, b in zip(outputs(ours, ids, segments, mask), hf_outputs(theirs, ids, segments, mask), strict=True):
        assert_equivalent(a, b, depth=config.n_layers)


@pytest.mark.numerics
def test_need_weights_path_equals_fused_path() -> None:
    config = CONFIGS["odd heads D=24 H=3"]
    model = perturb(BertModel(config)).double()
    ids, segments, mask = batch(config)
    fused = model(ids, segments, mask)
    explicit = model(ids, segments, mask, need_weights=True)
    for a, b in zip(explicit, fused, strict=True):
        assert_equivalent(a, b, depth=config.n_layers)
    weights = model.layers[0].last_self_weights  # (B, H, T, T)
    assert weights is not None and weights.shape == (3, 3, 7, 7)
    assert bool((weights[2, :, :, 5:] == 0).all())  # row 2 has 5 real tokens: no weight on the padding


@pytest.mark.numerics
def test_dropout_in_the_same_places_as_hf() -> None:
    """In training mode, with the same seed, the dropout masks fall on the same units as Hugging Face's eager BERT:
    embeddings, attention weights and both residual branches, but not the FFN hidden units."""
    config = BertConfig.tiny(50, n_layers=2, d_model=32, n_heads=4, context_length=16, dropout=0.1)
    ours = perturb(BertForPreTraining(config)).double().train()
    hf = hf_bert.to_hf(ours).train()
    hf.config._attn_implementation = "eager"  # SDPA draws its dropout mask from another generator path
    ids, segments, mask = batch(config)
    torch.manual_seed(1)
    mlm, nsp = ours(ids, segments, mask)
    torch.manual_seed(1)
    out = hf(input_ids=ids, token_type_ids=segments, attention_mask=mask)
    assert_equivalent(mlm, out.prediction_logits, depth=config.n_layers)
    assert_equivalent(nsp, out.seq_relationship_logits, depth=config.n_layers)


@pytest.mark.numerics
def test_masked_positions_give_the_gathered_logits() -> None:
    config = CONFIGS["odd heads D=24 H=3"]
    model = perturb(BertForPreTraining(config)).double()
    ids, segments, mask = batch(config)
    positions = torch.rand(ids.shape) < 0.3  # (B, T)
    positions[0, 1] = True
    full_mlm, full_nsp = model(ids, segments, mask)
    mlm, nsp = model(ids, segments, mask, masked_positions=positions)
    assert mlm.shape == (int(positions.sum()), config.vocab_size)
    assert_equivalent(mlm, full_mlm[positions], depth=config.n_layers)
    assert_equivalent(nsp, full_nsp, depth=config.n_layers)
    with pytest.raises(ValueError, match="masked_positions must be a bool tensor"):
        model(ids, segments, mask, masked_positions=positions.long())
    with pytest.raises(ValueError, match="masked_positions must be a bool tensor"):
        model(ids, segments, mask, masked_positions=positions[:, :2])
    with pytest.raises(ValueError, match=r"masked_positions must be a bool tensor.*got list"):
        model(ids, segments, mask, masked_positions=positions.tolist())


# ---- invariants ----------------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_padding_does_not_change_real_tokens() -> None:
    config = CONFIGS["2 layers, 4 heads"]
    model = perturb(BertForPreTraining(config)).double()
    ids, segments, _ = batch(config, B=1, T=5)
    mlm, nsp = model(ids, segments)
    padded_ids = torch.cat([ids, torch.full((1, 4), config.pad_token_id)], dim=1)  # (1, 9)
    padded_segments = torch.cat([segments, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 4])
    mlm_padded, nsp_padded = model(padded_ids, padded_segments, mask)
    assert_equivalent(mlm_padded[:, :5], mlm, depth=config.n_layers)
    assert_equivalent(nsp_padded, nsp, depth=config.n_layers)


def test_decoder_is_tied_to_the_token_embedding() -> None:
    model = BertForPreTraining(BertConfig.tiny())
    assert model.mlm_decoder.weight is model.bert.embeddings.tok_embed.weight
    theirs = hf_bert.to_hf(model)
    assert theirs.cls.predictions.decoder.weight is theirs.bert.embeddings.word_embeddings.weight
    ours = hf_bert.from_hf(theirs)
    assert ours.mlm_decoder.weight is ours.bert.embeddings.tok_embed.weight


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_parameter_count_equals_hf(cls: type) -> None:
    config = CONFIGS["odd heads D=24 H=3"]
    ours = make(cls, config)
    assert count_parameters(ours) == count_parameters(hf_bert.to_hf(ours))


def test_backward_reaches_every_parameter() -> None:
    model = BertForPreTraining(BertConfig.tiny()).train()
    ids, segments, mask = batch(model.config)
    with torch.enable_grad():
        mlm, nsp = model(ids, segments, mask)
        (mlm.logsumexp(-1).mean() + nsp.logsumexp(-1).mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


# ---- all-MiniLM-L6-v2 --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> transformers.BertModel:
    minilm_data = pytest.importorskip("llmdocs.data.minilm")
    try:
        directory = minilm_data.minilm_dir()
    except Exception as error:  # the data package is optional
        pytest.skip(f"all-MiniLM-L6-v2 not installed: {error}")
    return transformers.BertModel.from_pretrained(str(directory)).eval()


def test_minilm_parameter_count(minilm: transformers.BertModel) -> None:
    assert hf_bert.config_from_hf(minilm.config) == BertConfig.minilm_l6(dropout=minilm.config.hidden_dropout_prob)
    assert count_parameters(BertModel(BertConfig.minilm_l6())) == count_parameters(minilm)


@pytest.mark.numerics
def test_minilm_weights_give_the_same_hidden_states(minilm: transformers.BertModel) -> None:
    theirs = copy.deepcopy(minilm).double()
    ours = hf_bert.from_hf(theirs)
    ids = torch.tensor([[101, 1996, 4937, 2938, 2006, 1996, 13523, 1012, 102], [101, 7592, 2088, 102, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    hidden, pooled = ours(ids, attention_mask=mask)
    out = theirs(input_ids=ids, attention_mask=mask)
    assert_equivalent(hidden, out.last_hidden_state, depth=6)
    assert_equivalent(pooled, out.pooler_output, depth=6)


# ---- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(d_model=10, n_heads=3), "not divisible"),
        (dict(n_layers=0), "n_layers must be an integer >= 1"),
        (dict(dropout=1.0), "dropout"),
        (dict(activation="swish"), "activation"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps"),
        (dict(pad_token_id=64), "pad_token_id"),
    ],
)
def test_bad_config(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BertConfig.tiny(**overrides)


def test_bad_inputs() -> None:
    model = BertModel(BertConfig.tiny(context_length=8))
    ids = torch.tensor([[2, 3, 4]])
    with pytest.raises(ValueError, match="input_ids contains id 64 but vocab_size=64"):
        model(torch.tensor([[2, 64]]))
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        model(ids.float())
    with pytest.raises(ValueError, match="T=9 tokens but context_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="token_type_ids contains id 2 but vocab_size=2"):
        model(ids, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="token_type_ids must have the shape of input_ids"):
        model(ids, torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="attention_mask must be"):
        model(ids, attention_mask=torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer"):
        model(ids, attention_mask=torch.ones(1, 3))
    with pytest.raises(TypeError, match="from_hf converts"):
        hf_bert.from_hf(transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2)))
    with pytest.raises(ValueError, match="n_classes"):
        BertForSequenceClassification(BertConfig.tiny(), n_classes=0)
    assert BertEmbeddings(BertConfig.tiny())(ids).shape == (1, 3, 32)


# ---- saving with the tokenizer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_save_encoder_round_trip(cls: type, tmp_path) -> None:
    from llmdocs.serialization import load_encoder, save_encoder
    from llmdocs.tokenizers import WordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##able", "able", "中", "."]
    tokenizer = WordPieceTokenizer(vocab, do_lower_case=False, max_input_chars_per_word=20)
    config = BertConfig.tiny(len(vocab))
    model = cls(config, n_classes=3) if cls is BertForSequenceClassification else cls(config)
    perturb(model)
    path = save_encoder(tmp_path / "m", model, tokenizer, {"note": "x"})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "meta.json", "model.safetensors", "vocab.txt"]
    loaded, loaded_tok, meta = load_encoder(path)
    assert type(loaded) is cls and meta["note"] == "x"
    assert loaded_tok.vocab == tokenizer.vocab and not loaded_tok.do_lower_case
    assert loaded_tok.max_input_chars_per_word == 20
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name  # a lossless round trip
    if cls is BertForPreTraining:
        assert loaded.mlm_decoder.weight is loaded.bert.embeddings.tok_embed.weight  # still tied
    half = save_encoder(tmp_path / "half", model, tokenizer, weights_dtype=torch.float16)
    size = (half / "model.safetensors").stat().st_size
    assert size < 0.6 * (path / "model.safetensors").stat().st_size  # half the bytes, plus the header
    loaded_half = load_encoder(half)[0]
    assert json.loads((half / "config.json").read_text(encoding="utf-8"))["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded_half.parameters())  # loaded into the float32 model
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded_half.state_dict().items(), strict=True):
        assert torch.equal(a.half().to(a.dtype), b), name  # the float16-rounded weights
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the saved model itself is untouched
    with pytest.raises(TypeError, match=r"weights_dtype must be a floating torch\.dtype"):
        save_encoder(tmp_path / "bad", model, tokenizer, weights_dtype=torch.int8)


def test_save_encoder_bad_input(tmp_path) -> None:
    from llmdocs.serialization import load_encoder, save_encoder, save_pretrained
    from llmdocs.tokenizers import CharTokenizer, WordPieceTokenizer

    model = BertModel(BertConfig.tiny(8))
    with pytest.raises(TypeError, match="tokenizer must be a WordPieceTokenizer"):
        save_encoder(tmp_path / "a", model, CharTokenizer.train("abc"))
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(ValueError, match=r"ids must be 0\.\.7"):
        save_encoder(tmp_path / "b", model, tokenizer)
    save_pretrained(tmp_path / "c", model, model.config)
    with pytest.raises(ValueError, match="no BERT model with a WordPiece tokenizer"):
        load_encoder(tmp_path / "c")
    with pytest.raises(TypeError, match="model must be a BertModel"):
        save_encoder(tmp_path / "d", torch.nn.Linear(2, 2), tokenizer)
    good = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])
    path = save_encoder(tmp_path / "e", model, good)
    (path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")  # damaged
    with pytest.raises(ValueError, match="has 5 tokens but the model's vocab_size is 8"):
        load_encoder(path)
    (tmp_path / "file").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        save_encoder(tmp_path / "file", model, good)
    assert (tmp_path / "file").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folder left
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "important.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError, match="holds no saved model"):
        save_encoder(notes, model, good)
    assert (notes / "important.txt").read_text(encoding="utf-8") == "keep me"
    save_encoder(path, model, good)  # a model folder is replaced, as before
