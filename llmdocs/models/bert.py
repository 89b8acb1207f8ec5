"""BERT: a bidirectional Transformer encoder, pre-trained by masked-language modelling and next-sentence prediction.

    h_0 = Dropout(LN(E_tok[ids] + E_pos[positions] + E_seg[token_type_ids]))
    h_l = LN(h_{l-1} + Dropout(SelfAttention(h_{l-1})));  h_l = LN(h_l + Dropout(FFN(h_l)))      (Post-LN)
    pooled = tanh(W_p h_N[:, 0] + b_p)                                                         ([CLS] token)

Every token sees every other (non-padding) token: there is no causal mask. The encoder layers are the package's
[EncoderLayer][llmdocs.nn.transformer_layers.EncoderLayer] with ``norm_first=False`` (the 2017 placement) and the
exact GELU. Pre-training adds two heads (Devlin et al., 2019, section 3.1): a masked-language-model head whose
output matrix is the token embedding, and a next-sentence head on the pooled [CLS] vector. Weights map one to one
onto Hugging Face's ``BertModel`` / ``BertForPreTraining`` / ``BertForSequenceClassification`` through
[interop.hf_bert][llmdocs.interop.hf_bert].

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", NAACL 2019,
    section 3.
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.nn.attention import key_padding_mask
from llmdocs.nn.checks import check_model_config, check_token_ids
from llmdocs.nn.feedforward import get_activation
from llmdocs.nn.transformer_layers import EncoderLayer

__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertModel",
]


@dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a [BertModel][llmdocs.models.bert.BertModel] and its heads.

    Examples:
        >>> BertConfig.tiny().d_ff  # defaults to 4 * d_model
        128
        >>> BertConfig(d_model=10, n_heads=3)
        Traceback (most recent call last):
        ...
        ValueError: d_model=10 is not divisible by n_heads=3
    """

    vocab_size: int = 30522  # WordPiece vocabulary size V (BERT's uncased English vocabulary)
    context_length: int = (
        512  # longest sequence T_max: rows of the learned position embedding (HF: max_position_embeddings)
    )
    type_vocab_size: int = 2  # segment ids: 0 = sentence A, 1 = sentence B
    d_model: int = 768  # model width D
    n_heads: int = 12  # attention heads H; d_head = d_model // n_heads
    n_layers: int = 12  # number of encoder layers N
    d_ff: int | None = None  # feed-forward hidden width F; None -> 4 * d_model (set in __post_init__)
    activation: str = "gelu"  # FFN non-linearity: the exact (erf) GELU, as BERT
    dropout: float = 0.1  # P_drop on embeddings, attention weights, residual branches and the classifier input
    layer_norm_eps: float = 1e-12  # epsilon of every LayerNorm (BERT's TensorFlow value)
    pad_token_id: int = 0  # [PAD]: its embedding row starts at zero and gets no gradient from the lookup

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)  # frozen: set the derived default once
        sizes = ("vocab_size", "context_length", "type_vocab_size", "d_model", "n_heads", "n_layers", "d_ff")
        check_model_config(self, sizes)
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id={self.pad_token_id} is not a valid id for vocab_size={self.vocab_size}")

    @property
    def d_head(self) -> int:
        """Width Dh = D / H of one attention head."""
        return self.d_model // self.n_heads

    @classmethod
    def tiny(cls, vocab_size: int = 64, **overrides: Any) -> BertConfig:
        """A model small enough for tests and doctests (about 30k parameters), without dropout."""
        fields: dict[str, Any] = dict(context_length=32, d_model=32, n_heads=4, n_layers=2, dropout=0.0)
        return cls(vocab_size, **{**fields, **overrides})

    @classmethod
    def minilm_l6(cls, **overrides: Any) -> BertConfig:
        """all-MiniLM-L6-v2 (22.7M parameters): V=30522, T_max=512, D=384, H=12, F=1536, N=6."""
        fields: dict[str, Any] = dict(d_model=384, n_heads=12, d_ff=1536, n_layers=6)
        return cls(**{**fields, **overrides})

    @classmethod
    def base(cls, **overrides: Any) -> BertConfig:
        """BERT-base (110M parameters): V=30522, T_max=512, D=768, H=12, F=3072, N=12, dropout 0.1."""
        return cls(**overrides)


def _check_segments(token_type_ids: Tensor, shape: torch.Size, type_vocab_size: int) -> None:
    """Raise a readable error unless ``token_type_ids`` is an integer tensor of ``shape`` with ids < type_vocab_size."""
    if tuple(token_type_ids.shape) != tuple(shape):
        raise ValueError(
            f"token_type_ids must have the shape of input_ids {tuple(shape)}, got {tuple(token_type_ids.shape)}"
        )
    check_token_ids(token_type_ids, type_vocab_size, name="token_type_ids")


class BertEmbeddings(nn.Module):
    """Token + learned position + segment embeddings, then LayerNorm and dropout.

        h_0 = Dropout(LN(E_tok[ids] + E_pos[0..T-1] + E_seg[token_type_ids]))

    Args:
        config: a [BertConfig][llmdocs.models.bert.BertConfig].

    Shape:
        input_ids (B, T), token_type_ids (B, T) -> (B, T, D).

    References:
        Devlin et al., "BERT", NAACL 2019, section 3, "Input/Output Representations" (figure 2).

    Examples:
        >>> import torch
        >>> embed = BertEmbeddings(BertConfig.tiny())
        >>> embed(torch.tensor([[2, 5, 3]]), torch.tensor([[0, 0, 1]])).shape
        torch.Size([1, 3, 32])
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)  # E_tok
        self.pos_embed = nn.Embedding(config.context_length, config.d_model)  # E_pos (T_max, D)
        self.type_embed = nn.Embedding(config.type_vocab_size, config.d_model)  # E_seg (2, D)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Embed ``input_ids`` (B, T); ``token_type_ids`` (B, T) defaults to all zeros (one segment)."""
        check_token_ids(input_ids, self.config.vocab_size, name="input_ids")
        T = input_ids.size(1)
        if input_ids.size(1) > self.config.context_length:  # no learned position beyond T_max
            raise ValueError(
                f"input_ids has T={T} tokens but context_length={self.config.context_length} (the learned positions)"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # (B, T)
        else:
            _check_segments(token_type_ids, input_ids.shape, self.config.type_vocab_size)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.tok_embed(input_ids) + self.pos_embed(positions) + self.type_embed(token_type_ids)  # (B, T, D)
        return self.dropout(self.norm(x))


class BertModel(nn.Module):
    """The BERT encoder: embeddings, N Post-LN encoder layers, and the [CLS] pooler.

    Args:
        config: a [BertConfig][llmdocs.models.bert.BertConfig].

    Shape:
        input_ids (B, T), token_type_ids (B, T), attention_mask (B, T) -> last_hidden_state (B, T, D),
        pooled (B, D).

    References:
        Devlin et al., "BERT", NAACL 2019, section 3 (the model is the encoder of Vaswani et al., 2017).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = BertModel(BertConfig.tiny()).eval()
        >>> ids = torch.tensor([[2, 7, 9, 3, 0], [2, 4, 3, 0, 0]])  # 0 = [PAD]
        >>> hidden, pooled = model(ids, attention_mask=(ids != 0).long())
        >>> hidden.shape, pooled.shape
        (torch.Size([2, 5, 32]), torch.Size([2, 32]))
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        assert config.d_ff is not None
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.d_model,
                config.n_heads,
                config.d_ff,
                dropout=config.dropout,
                norm_first=False,  # Post-LN, as the 2017 Transformer and BERT
                activation=config.activation,
                layer_norm_eps=config.layer_norm_eps,
                ffn_dropout=0.0,  # BERT drops out the FFN output, not its hidden units (as Hugging Face's BertLayer)
            )
            for _ in range(config.n_layers)
        )
        self.pooler = nn.Linear(config.d_model, config.d_model)  # W_p, b_p on the [CLS] vector
        _init_weights(self)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Encode a batch of token ids.

        Args:
            input_ids: token ids (B, T), T <= ``context_length``; the first token is [CLS] by convention.
            token_type_ids: segment ids (B, T) in 0..type_vocab_size-1; None = all 0.
            attention_mask: (B, T), 1 at real tokens and 0 at padding (Hugging Face's convention); None = no padding.
            need_weights: keep each layer's attention weights (B, H, T, T) in ``layers[i].last_self_weights``.

        Returns:
            ``(last_hidden_state, pooled)``: (B, T, D) and tanh(W_p h[:, 0] + b_p) of shape (B, D).
        """
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, D)
        B, T, _ = x.shape
        keys = key_padding_mask(attention_mask, B, T)  # (B, T), True = may attend
        mask = None if keys is None else keys[:, None, None, :]  # (B, 1, 1, T): every query sees the real keys
        for layer in self.layers:
            x = layer(x, mask=mask, need_weights=need_weights)  # (B, T, D)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, D)
        return x, pooled


class BertForPreTraining(nn.Module):
    """BERT with its two pre-training heads: masked-language model (MLM) and next-sentence prediction (NSP).

        mlm_logits = LN(GELU(W_t h + b_t)) E_tok^T + b_V        nsp_logits = W_s pooled + b_s

    The MLM decoder's weight *is* the token embedding (tied, as in BERT), so it adds only the bias b_V.

    Args:
        config: a [BertConfig][llmdocs.models.bert.BertConfig].

    Shape:
        input_ids (B, T) -> mlm_logits (B, T, V), nsp_logits (B, 2).

    References:
        Devlin et al., "BERT", NAACL 2019, section 3.1 (tasks 1 and 2) and appendix A.1.

    Examples:
        >>> import torch
        >>> model = BertForPreTraining(BertConfig.tiny()).eval()
        >>> mlm_logits, nsp_logits = model(torch.tensor([[2, 7, 1, 3]]))
        >>> mlm_logits.shape, nsp_logits.shape
        (torch.Size([1, 4, 64]), torch.Size([1, 2]))
        >>> model.mlm_decoder.weight is model.bert.embeddings.tok_embed.weight
        True
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_transform = nn.Linear(config.d_model, config.d_model)  # W_t, b_t
        self.mlm_activation = get_activation(config.activation)  # the encoder's: GELU in BERT
        self.mlm_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlm_decoder = nn.Linear(config.d_model, config.vocab_size)  # weight tied below; bias b_V
        self.nsp_head = nn.Linear(config.d_model, 2)  # IsNext / NotNext
        _init_weights(self)
        nn.init.zeros_(self.mlm_decoder.bias)
        self.mlm_decoder.weight = self.bert.embeddings.tok_embed.weight  # (V, D), shared

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        need_weights: bool = False,
        masked_positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """MLM logits (B, T, V) at every position (or only at ``masked_positions``) and NSP logits (B, 2).

        Arguments as in [BertModel.forward][llmdocs.models.bert.BertModel.forward], and:

        Args:
            masked_positions: bool (B, T), True where a prediction is wanted (the masked tokens, ``labels != -100``).
                The MLM head then runs on those M positions only and returns (M, V) in row-major order, equal to
                ``mlm_logits[masked_positions]`` of the full output. Google's BERT does the same
                (``gather_indexes`` on ``masked_lm_positions``): with 15% of the tokens predicted, it skips 85% of
                the largest matrix product of the model, (B*T, D) x (D, V).

        Raises:
            ValueError: If ``masked_positions`` is not a bool tensor of the shape of ``input_ids``.
        """
        if masked_positions is not None and (
            not isinstance(masked_positions, Tensor)
            or masked_positions.dtype != torch.bool
            or masked_positions.shape != input_ids.shape
        ):
            got = (
                f"{masked_positions.dtype} {tuple(masked_positions.shape)}"
                if isinstance(masked_positions, Tensor)
                else type(masked_positions).__name__
            )
            raise ValueError(
                f"masked_positions must be a bool tensor of shape {tuple(input_ids.shape)} (like input_ids), got {got}"
            )
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask, need_weights)  # (B, T, D), (B, D)
        if masked_positions is not None:
            hidden = hidden[masked_positions]  # (M, D)
        h = self.mlm_norm(self.mlm_activation(self.mlm_transform(hidden)))  # (B, T, D) or (M, D)
        return self.mlm_decoder(h), self.nsp_head(pooled)  # (B, T, V) or (M, V), (B, 2)


class BertForSequenceClassification(nn.Module):
    """BERT with a linear classifier on the pooled [CLS] vector: logits = W_c Dropout(pooled) + b_c.

    Args:
        config: a [BertConfig][llmdocs.models.bert.BertConfig].
        n_classes: number of labels C.

    Shape:
        input_ids (B, T) -> logits (B, C).

    References:
        Devlin et al., "BERT", NAACL 2019, section 4.1 (GLUE fine-tuning).

    Examples:
        >>> import torch
        >>> model = BertForSequenceClassification(BertConfig.tiny(), n_classes=3).eval()
        >>> model(torch.tensor([[2, 7, 9, 3]])).shape
        torch.Size([1, 3])
    """

    def __init__(self, config: BertConfig, n_classes: int = 2) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 1:
            raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
        self.config = config
        self.n_classes = n_classes
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, n_classes)  # W_c, b_c
        _init_weights(self.classifier)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor:
        """Class logits (B, C); arguments as in [BertModel.forward][llmdocs.models.bert.BertModel.forward]."""
        _, pooled = self.bert(input_ids, token_type_ids, attention_mask, need_weights)  # (B, D)
        return self.classifier(self.dropout(pooled))  # (B, C)


def _init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights (truncated in the original), zero biases, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
