"""Sentence embeddings: a BERT encoder, then the mean of its output vectors over the real tokens (Sentence-BERT).

    h = BERT(WordPiece(sentence))                  (T, D)   one contextual vector per token
    u = sum_t m_t h_t / sum_t m_t                  (D,)     mean pooling over the real tokens (m_t = 1, padding 0)
    e = u / ||u||                                  (D,)     unit length, so that cosine = dot product

Sentence-BERT (Reimers & Gurevych, 2019) fine-tunes BERT so that the cosine of two such vectors measures how close
the meanings of two sentences are. [SentenceEncoder][llmdocs.models.sentence_encoder.SentenceEncoder] runs our own
[BertModel][llmdocs.models.bert.BertModel] and [WordPieceTokenizer][llmdocs.tokenizers.wordpiece.WordPieceTokenizer]
on the files of a sentence-transformers folder (all-MiniLM-L6-v2 ships with the course) and gives the embeddings of
``sentence_transformers.SentenceTransformer.encode``, without importing ``transformers`` or ``sentence_transformers``.

Examples:
    >>> encoder = SentenceEncoder.minilm()
    >>> emb = encoder.encode(["A man is eating food.", "A man is eating pasta.", "The sky is blue."])
    >>> emb.shape
    torch.Size([3, 384])
    >>> scores = cosine_similarity_matrix(emb[:1], emb[1:])  # (1, 2): food vs pasta, food vs sky
    >>> bool(scores[0, 0] > 0.6 > 0.2 > scores[0, 1])
    True

References:
    Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019, section 3
    (pooling strategies) and section 6 (ablation: MEAN beats CLS).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from llmdocs.interop.hf_bert import config_from_hf, state_dict_from_hf
from llmdocs.models.bert import BertModel
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["SentenceEncoder", "contextual_token_vectors", "cosine_similarity_matrix", "mean_pooling", "semantic_search"]

POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
"""Keys of a sentence-transformers ``1_Pooling/config.json`` -> our ``pooling`` names (the modes implemented)."""


def _check_hidden_and_mask(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The mask as a (B, T, 1) tensor of hidden's dtype; readable errors on bad shapes or rows without a token."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must have shape (B, T, D), got {tuple(hidden.shape)}")
    B, T, _ = hidden.shape
    if tuple(attention_mask.shape) != (B, T):
        raise ValueError(f"attention_mask must have shape (B, T) = {(B, T)}, got {tuple(attention_mask.shape)}")
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("attention_mask must hold 1 (real token) and 0 (padding) only")
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1), 1 at real tokens
    empty = (mask.sum(dim=1) == 0).flatten().nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"rows {empty} of attention_mask have no real token: their pooled vector is undefined")
    return mask


def mean_pooling(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of the token vectors over the real tokens: u = sum_t m_t h_t / sum_t m_t.

    Padding positions (m_t = 0) do not count, so a sentence gets the same vector however much it is padded.
    sentence-transformers divides by ``clamp(sum_t m_t, min=1e-9)`` and returns zeros for a row without a real token;
    here such a row is an error, since every encoded sentence has at least [CLS] and [SEP].

    Args:
        hidden: token vectors (B, T, D), e.g. BERT's last hidden state.
        attention_mask: (B, T), 1 (or True) at real tokens and 0 at padding.

    Returns:
        The sentence vectors (B, D), in hidden's dtype (float32 for an integer hidden).

    Raises:
        ValueError: the shapes do not match, or a row of ``attention_mask`` has no real token.

    References:
        Reimers & Gurevych, "Sentence-BERT", EMNLP 2019, section 3 (MEAN strategy).

    Examples:
        >>> import torch
        >>> hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # (1, 3, 2); the last token is padding
        >>> mean_pooling(hidden, torch.tensor([[1, 1, 0]]))
        tensor([[2., 3.]])
    """
    mask = _check_hidden_and_mask(hidden, attention_mask)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)  # (B, D) / (B, 1)


def _check_embeddings(a: object, b: object, a_name: str, b_name: str) -> None:
    """Two float tensors (Q, D) and (N, D), named in errors as the caller's parameters are."""
    for name, x in ((a_name, a), (b_name, b)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = f"a {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{name} must be a float tensor of embeddings (rows, D), got {kind}")
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    if a.dim() != 2 or b.dim() != 2 or a.size(1) != b.size(1):
        raise ValueError(
            f"expected (Q, D) and (N, D) embeddings, got {tuple(a.shape)} and {tuple(b.shape)}: {a_name} and "
            f"{b_name} must be 2-D with the same width D"
        )


def cosine_similarity_matrix(a: Tensor, b: Tensor) -> Tensor:
    """All cosines between the rows of ``a`` (Q, D) and of ``b`` (N, D): (Q, N) = normalize(a) normalize(b)^T.

    Raises:
        TypeError: ``a`` or ``b`` is not a floating-point tensor (e.g. a list, or token ids).
        ValueError: ``a`` or ``b`` is not 2-D, or their widths D differ.

    Examples:
        >>> import torch
        >>> cosine_similarity_matrix(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]]))
        tensor([[1.0000, 0.7071, 0.0000]])
    """
    _check_embeddings(a, b, "a", "b")
    dtype = torch.promote_types(a.dtype, b.dtype)  # float32 queries against a float64 corpus, say
    return F.normalize(a.to(dtype), dim=1) @ F.normalize(b.to(dtype), dim=1).T  # (Q, D) @ (D, N) -> (Q, N)


def semantic_search(
    query_embeddings: Tensor, corpus_embeddings: Tensor, top_k: int = 5
) -> list[list[tuple[int, float]]]:
    """The ``top_k`` corpus entries closest to each query by cosine, best first: ``[[(corpus_index, score), ...]]``.

    The same results as ``sentence_transformers.util.semantic_search`` (which returns ``{"corpus_id", "score"}``
    dicts), computed in one matrix product rather than in chunks: fine for a corpus that fits in memory.

    Args:
        query_embeddings: (Q, D).
        corpus_embeddings: (N, D).
        top_k: hits per query; at most N are returned.

    Returns:
        Q lists of ``min(top_k, N)`` pairs ``(corpus index, cosine)``, by decreasing cosine.

    Raises:
        TypeError: ``query_embeddings`` or ``corpus_embeddings`` is not a float tensor.
        ValueError: they are not (Q, D) and (N, D) with the same D, hold NaN or infinite values (which would
            rank first or break the ranking silently), or ``top_k`` is not an integer >= 1.

    Examples:
        >>> import torch
        >>> corpus = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> hits = semantic_search(torch.tensor([[1.0, 0.1]]), corpus, top_k=2)  # one query, its 2 best hits
        >>> [(index, round(score, 3)) for index, score in hits[0]]
        [(0, 0.995), (2, 0.774)]
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    _check_embeddings(query_embeddings, corpus_embeddings, "query_embeddings", "corpus_embeddings")
    for name, x in (("query_embeddings", query_embeddings), ("corpus_embeddings", corpus_embeddings)):
        bad_rows = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()  # (n_bad,)
        if len(bad_rows):
            raise ValueError(
                f"{name} has NaN or infinite values in {len(bad_rows)} row(s), e.g. rows {bad_rows[:5].tolist()}: "
                "their cosines are NaN, and NaN would rank first; check the model or the inputs that made them"
            )
    scores = cosine_similarity_matrix(query_embeddings, corpus_embeddings)  # (Q, N)
    values, indices = scores.topk(min(top_k, scores.size(1)), dim=1)  # (Q, k), sorted by decreasing score
    return [list(zip(i, v, strict=True)) for i, v in zip(indices.tolist(), values.tolist(), strict=True)]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class SentenceEncoder(nn.Module):
    """A sentence-transformers model on our own parts: WordPiece -> BertModel -> pooling -> (normalisation).

    Args:
        bert: the encoder, with its weights.
        tokenizer: its WordPiece tokenizer.
        pooling: ``"mean"`` (Sentence-BERT's default), ``"cls"`` (the [CLS] vector) or ``"max"`` (per feature).
        max_seq_length: longer inputs are truncated to this many tokens, [CLS] and [SEP] included; None = the
            model's ``context_length``.
        normalize: whether embeddings are scaled to unit length (the folder's ``2_Normalize`` module).

    Raises:
        ValueError: an unknown ``pooling``, or ``max_seq_length`` outside 2..context_length.

    Shape:
        input_ids (B, T), attention_mask (B, T) -> (B, D); ``encode``: N sentences -> (N, D).
    """

    def __init__(
        self,
        bert: BertModel,
        tokenizer: WordPieceTokenizer,
        pooling: str = "mean",
        max_seq_length: int | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in POOLING_MODES.values():
            raise ValueError(f"pooling={pooling!r} is not implemented; choose one of {sorted(POOLING_MODES.values())}")
        max_seq_length = bert.config.context_length if max_seq_length is None else max_seq_length
        if not 2 <= max_seq_length <= bert.config.context_length:
            raise ValueError(f"max_seq_length={max_seq_length} must be in 2..{bert.config.context_length}")
        self.bert, self.tokenizer = bert, tokenizer
        self.pooling, self.max_seq_length, self.normalize = pooling, max_seq_length, normalize

    @classmethod
    def from_pretrained_folder(cls, folder: str | PathLike[str]) -> SentenceEncoder:
        """Load a sentence-transformers folder offline: a BERT ``Transformer``, a ``Pooling``, maybe ``Normalize``.

        Reads ``modules.json`` (the pipeline), ``config.json`` (through ``config_from_hf``, no ``transformers``),
        ``model.safetensors`` (renamed by ``state_dict_from_hf``), ``vocab.txt`` and ``tokenizer_config.json``,
        ``sentence_bert_config.json`` (``max_seq_length``) and the pooling folder's ``config.json``.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: a module, a pooling mode or a model type this class does not implement.
        """
        folder = Path(folder)
        modules = {m["type"].rpartition(".")[2]: folder / m["path"] for m in _read_json(folder / "modules.json")}
        unknown = set(modules) - {"Transformer", "Pooling", "Normalize"}
        if unknown or "Transformer" not in modules or "Pooling" not in modules:
            raise ValueError(f"modules {sorted(modules)}: only Transformer, Pooling and Normalize are implemented")
        model_dir = modules["Transformer"]
        modes = [name for key, name in POOLING_MODES.items() if _read_json(modules["Pooling"] / "config.json")[key]]
        if len(modes) != 1:  # other modes (mean_sqrt_len, weightedmean, lasttoken) or a concatenation of several
            raise ValueError(f"pooling config {modules['Pooling'] / 'config.json'}: need exactly one of mean, cls, max")
        st_config = _read_json(model_dir / "sentence_bert_config.json")
        tokenizer_config = model_dir / "tokenizer_config.json"
        options = _read_json(tokenizer_config) if tokenizer_config.is_file() else {}
        if st_config.get("do_lower_case", False) and not options.get("do_lower_case", True):
            raise ValueError("sentence_bert_config.json lower-cases but the tokenizer does not: not implemented")
        tokenizer = WordPieceTokenizer.from_vocab_file(
            model_dir / "vocab.txt",
            do_lower_case=options.get("do_lower_case", True),
            strip_accents=options.get("strip_accents"),
            tokenize_chinese_chars=options.get("tokenize_chinese_chars", True),
        )
        bert = BertModel(config_from_hf(_read_json(model_dir / "config.json")))
        weights = state_dict_from_hf(load_file(model_dir / "model.safetensors"))
        missing, unexpected = bert.load_state_dict(weights, strict=False)
        if unexpected or any(not name.startswith("pooler.") for name in missing):  # the pooler is not used here
            raise ValueError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
        max_len = min(st_config.get("max_seq_length") or bert.config.context_length, bert.config.context_length)
        return cls(bert, tokenizer, modes[0], max_len, normalize="Normalize" in modules).eval()

    @classmethod
    def minilm(cls) -> SentenceEncoder:
        """all-MiniLM-L6-v2 from the packaged folder ([minilm_dir][llmdocs.data.minilm.minilm_dir]): D=384, T <= 256."""
        from llmdocs.data.minilm import minilm_dir

        return cls.from_pretrained_folder(minilm_dir())

    def tokenize(self, sentences: Sequence[str]) -> dict[str, Tensor]:
        """``input_ids``, ``token_type_ids``, ``attention_mask`` (B, T): truncated to ``max_seq_length``, padded."""
        batch = self.tokenizer.encode_batch(list(sentences), max_length=self.max_seq_length, truncation=True)
        device = self.bert.pooler.weight.device
        return {name: torch.tensor(rows, dtype=torch.long, device=device) for name, rows in batch.items()}

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        normalize: bool | None = None,
    ) -> Tensor:
        """Sentence embeddings (B, D) of a tokenized batch (arguments as ``BertModel``; None mask = no padding).

        ``normalize`` None follows ``self.normalize``.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)  # (B, T): every token is real
        hidden, _ = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, D)
        if self.pooling == "mean":
            emb = mean_pooling(hidden, attention_mask)  # (B, D)
        elif self.pooling == "cls":
            emb = hidden[:, 0]  # (B, D): [CLS], the first token (padding is on the right)
        else:
            mask = _check_hidden_and_mask(hidden, attention_mask)  # (B, T, 1)
            emb = hidden.masked_fill(mask == 0, float("-inf")).amax(dim=1)  # (B, D)
        normalize = self.normalize if normalize is None else normalize
        return F.normalize(emb, p=2, dim=1) if normalize else emb

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        normalize: bool | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Embed sentences in eval mode without gradients, ``batch_size`` at a time; rows in input order.

        As sentence-transformers, sentences are sorted longest first (by characters) before batching, so that each
        batch holds sentences of similar length and little padding; the rows are put back in input order.

        Args:
            sentences: one sentence or a sequence of N sentences.
            batch_size: sentences per forward pass.
            normalize: unit-length rows; None = as the loaded folder says (all-MiniLM-L6-v2: True).
            progress: show a progress bar over the batches.

        Returns:
            (N, D) in the model's dtype (float32 unless converted), on the model's device.

        Raises:
            ValueError: ``sentences`` is empty, or ``batch_size`` is not an integer >= 1.
            TypeError: ``sentences`` is neither a string nor a sequence of strings.
        """
        texts = [sentences] if isinstance(sentences, str) else sentences
        if not isinstance(texts, Sequence) or isinstance(texts, bytes):
            raise TypeError(f"sentences must be a str or a sequence of str, got {type(sentences).__name__}")
        if len(texts) == 0:
            raise ValueError("sentences is empty: give at least one sentence")
        bad = [s for s in texts if not isinstance(s, str)]
        if bad:  # a list, not next(..., None): None itself is a bad item
            raise TypeError(f"sentences must all be str, got {type(bad[0]).__name__} {bad[0]!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # longest first, ties in input order
        out = torch.empty(len(texts), self.bert.config.d_model, dtype=self.bert.pooler.weight.dtype)
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), batch_size), desc="batches", disable=not progress):
                rows = order[start : start + batch_size]
                out[rows] = self(**self.tokenize([texts[i] for i in rows]), normalize=normalize).cpu()  # (B, D)
        self.train(was_training)
        return out.to(self.bert.pooler.weight.device)


def contextual_token_vectors(encoder: SentenceEncoder, sentence: str, word: str) -> Tensor:
    """The output vector of ``word`` at each place it occurs in ``sentence``: the mean over its WordPiece pieces.

    A static embedding gives "bank" one vector; BERT gives it one per occurrence, computed from the whole sentence
    (Devlin et al., 2019, section 3). ``word`` is tokenized like the sentence (so matching ignores case for an
    uncased model) and must match whole words: "bank" is found in "the bank" but not in "banks". A phrase works too.

    Args:
        encoder: a [SentenceEncoder][llmdocs.models.sentence_encoder.SentenceEncoder] (its BERT and tokenizer).
        sentence: the context.
        word: the word (or phrase) to look up.

    Returns:
        (K, D): one vector per occurrence, in order; the last hidden state, not normalised.

    Raises:
        ValueError: ``word`` does not occur in ``sentence`` (or only after ``max_seq_length`` tokens), or is empty.
        TypeError: ``sentence`` or ``word`` is not a string.

    Examples:
        >>> encoder = SentenceEncoder.minilm()
        >>> river = contextual_token_vectors(encoder, "We sat on the bank of the river.", "bank")
        >>> money = contextual_token_vectors(encoder, "She paid the cheque into the bank.", "Bank")
        >>> river.shape, bool(cosine_similarity_matrix(river, money) < 0.9)
        (torch.Size([1, 384]), True)
    """
    if not isinstance(sentence, str) or not isinstance(word, str):
        raise TypeError(f"sentence and word must be str, got {type(sentence).__name__} and {type(word).__name__}")
    target = encoder.tokenizer.tokenize(word)  # e.g. ['bank'], or ['em', '##bed', '##ding'] for a rare word
    if not target:
        raise ValueError(f"word={word!r} has no token")
    if encoder.tokenizer.unk_token in target:  # every unknown word is the same [UNK]: it cannot be found again
        raise ValueError(
            f"word={word!r} has characters outside the vocabulary (tokens {target}): its {encoder.tokenizer.unk_token}"
            " cannot be told apart from any other unknown word of the sentence"
        )
    batch = encoder.tokenize([sentence])  # (1, T) with [CLS] ... [SEP], truncated to max_seq_length
    tokens = encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    n = len(target)
    starts = [  # whole words only: the match is not followed by a '##' continuation
        i for i in range(1, len(tokens) - n) if tokens[i : i + n] == target and not tokens[i + n].startswith("##")
    ]
    if not starts:
        raise ValueError(f"word={word!r} (tokens {target}) does not occur in sentence={sentence!r}")
    was_training = encoder.bert.training
    with torch.inference_mode():
        hidden = encoder.bert.eval()(**batch)[0][0]  # (T, D): the last hidden state of the one sentence
    encoder.bert.train(was_training)
    return torch.stack([hidden[i : i + n].mean(dim=0) for i in starts])  # (K, D)
