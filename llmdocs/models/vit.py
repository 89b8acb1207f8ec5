"""The Vision Transformer (ViT): an image read as a sequence of patches by a Transformer encoder.

    z_0 = [x_class; x_p^1 E; ...; x_p^P E] + E_pos                                  (eq. 1: patches as tokens)
    z'_l = z_{l-1} + MSA(LN(z_{l-1})),   z_l = z'_l + MLP(LN(z'_l)),   l = 1..L      (eqs. 2-3: Pre-LN layers)
    y = LN(z_L^0)                                                                   (eq. 4: the [CLS] output)
    logits = W_head y + b_head

Nothing in the encoder is specific to images: the layers are the package's
[EncoderLayer][llmdocs.nn.transformer_layers.EncoderLayer] with ``norm_first=True`` and the exact GELU, and every
patch attends to every other one from the first layer on (a convolution sees a 3 x 3 neighbourhood). What the
model knows about 2-D structure comes only from the patch cut and the position embeddings
([llmdocs.nn.patch_embedding][llmdocs.nn.patch_embedding]). The classifier reads the [CLS] token (the paper) or
the mean of the patch tokens (``pool="mean"``, section 3.1 and appendix D.3).

Weights map one to one onto Hugging Face's ``ViTModel`` / ``ViTForImageClassification`` through
[interop.hf_vit][llmdocs.interop.hf_vit]. [attention_rollout][llmdocs.models.vit.attention_rollout] follows the
attention through the layers to show which patches the [CLS] token reads (Abnar and Zuidema, 2020).

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021,
    section 3.1 (eqs. 1-4), table 1 (ViT-Base).
    Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, section 3 (attention rollout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.nn.checks import check_model_config
from llmdocs.nn.patch_embedding import POS_EMBEDDINGS, ImageEmbedding
from llmdocs.nn.transformer_layers import EncoderLayer

__all__ = ["HEAD_FUSIONS", "POOLINGS", "ViT", "ViTConfig", "attention_rollout", "rollout_map"]

POOLINGS = ("cls", "mean")
"""How [ViT][llmdocs.models.vit.ViT] turns its output sequence into one vector: the [CLS] token or the patch mean."""


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a [ViT][llmdocs.models.vit.ViT].

    Examples:
        >>> ViTConfig.fashion_mnist().n_patches  # 28 x 28 pixels in 4 x 4 patches
        49
        >>> ViTConfig(image_size=28, patch_size=5)
        Traceback (most recent call last):
        ...
        ValueError: image_size=28 is not divisible by patch_size=5
    """

    image_size: int = 224  # side H = W of the (square) input images, in pixels
    patch_size: int = 16  # side p of a patch; P = (image_size / p)^2 patches
    n_channels: int = 3  # C: 3 for RGB, 1 for grayscale
    n_classes: int = 1000  # logits of the classification head
    d_model: int = 768  # model width D (ViT-Base)
    n_heads: int = 12  # attention heads H; d_head = d_model // n_heads
    n_layers: int = 12  # encoder layers L
    d_ff: int | None = None  # MLP hidden width F; None -> 4 * d_model (set in __post_init__)
    activation: str = "gelu"  # the exact (erf) GELU, as ViT (Hugging Face: hidden_act="gelu")
    dropout: float = 0.0  # on embeddings, attention weights and residual branches (Hugging Face's places)
    layer_norm_eps: float = 1e-12  # Hugging Face's ViTConfig default; the original JAX code uses 1e-6
    pool: str = "cls"  # "cls": the [CLS] token's output (the paper); "mean": the mean of the patch outputs
    pos_embedding: str = "learned"  # "learned" (the paper) or "sincos" (fixed 2-D sine-cosine)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)  # frozen: set the derived default once
        sizes = ("image_size", "patch_size", "n_channels", "n_classes", "d_model", "n_heads", "n_layers", "d_ff")
        check_model_config(self, sizes)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not divisible by patch_size={self.patch_size}")
        if self.pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {self.pool!r}")
        if self.pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {POS_EMBEDDINGS}, got {self.pos_embedding!r}")
        if self.pos_embedding == "sincos" and self.d_model % 4:
            raise ValueError(f"pos_embedding='sincos' needs d_model divisible by 4, got d_model={self.d_model}")

    @property
    def d_head(self) -> int:
        """Width Dh = D / H of one attention head."""
        return self.d_model // self.n_heads

    @property
    def grid_size(self) -> int:
        """Patches per side, image_size / patch_size."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        """P, the patches of one image."""
        return self.grid_size**2

    @property
    def n_tokens(self) -> int:
        """T = 1 + P, the length of the encoder's sequence ([CLS] and the patches)."""
        return 1 + self.n_patches

    @classmethod
    def tiny(cls, **overrides: Any) -> ViTConfig:
        """A model small enough for tests and doctests: 8 x 8 RGB images in 4 patches, D=16, 2 layers, 3 classes."""
        fields: dict[str, Any] = dict(
            image_size=8, patch_size=4, n_channels=3, n_classes=3, d_model=16, n_heads=2, n_layers=2, d_ff=32
        )
        return cls(**{**fields, **overrides})

    @classmethod
    def fashion_mnist(cls, **overrides: Any) -> ViTConfig:
        """Fashion-MNIST: 28 x 28 grayscale in 49 patches of 4 x 4, D=64, H=4, F=128, L=4, 10 classes (~0.14M)."""
        fields: dict[str, Any] = dict(
            image_size=28, patch_size=4, n_channels=1, n_classes=10, d_model=64, n_heads=4, n_layers=4, d_ff=128
        )
        return cls(**{**fields, **overrides})

    @classmethod
    def base(cls, **overrides: Any) -> ViTConfig:
        """ViT-B/16 (86M parameters, table 1 of the paper): 224 x 224 RGB, patch 16, D=768, H=12, F=3072, L=12."""
        return cls(**overrides)


class ViT(nn.Module):
    """The Vision Transformer: image embedding, L Pre-LN encoder layers, a final LayerNorm, a linear head.

    Args:
        config: a [ViTConfig][llmdocs.models.vit.ViTConfig].

    Attributes:
        embeddings: the [ImageEmbedding][llmdocs.nn.patch_embedding.ImageEmbedding] (patches, [CLS], positions).
        layers: the encoder layers; after a call with ``need_weights=True``, ``layers[l].last_self_weights``
            holds layer l's attention weights (B, H, T, T) (see ``attention_weights``).

    Shape:
        images (B, C, H, W) -> logits (B, n_classes); ``encode``: (B, T, D) with T = 1 + P.

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.1 (eqs. 1-4).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = ViT(ViTConfig.tiny()).eval()
        >>> images = torch.rand(2, 3, 8, 8)
        >>> model(images).shape
        torch.Size([2, 3])
        >>> model.encode(images, need_weights=True).shape  # [CLS] + 4 patches
        torch.Size([2, 5, 16])
        >>> [w.shape for w in model.attention_weights()]  # (B, H, T, T) per layer
        [torch.Size([2, 2, 5, 5]), torch.Size([2, 2, 5, 5])]
        >>> model(torch.rand(2, 1, 8, 8))
        Traceback (most recent call last):
        ...
        ValueError: images has C=1 channels (shape (2, 1, 8, 8)) but the model expects n_channels=3
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config must be a ViTConfig, got {type(config).__name__}")
        assert config.d_ff is not None
        self.config = config
        self.embeddings = ImageEmbedding(
            config.image_size,
            config.patch_size,
            config.n_channels,
            config.d_model,
            pos_embedding=config.pos_embedding,
            dropout=config.dropout,
        )
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.d_model,
                config.n_heads,
                config.d_ff,
                dropout=config.dropout,
                norm_first=True,  # Pre-LN: z' = z + MSA(LN(z)), eq. 2
                activation=config.activation,
                layer_norm_eps=config.layer_norm_eps,
                ffn_dropout=0.0,  # no dropout on the MLP's hidden units, as Hugging Face's ViTMLP
            )
            for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)  # the final LN of eq. 4
        self.head = nn.Linear(config.d_model, config.n_classes)  # W_head, b_head
        _init_weights(self)

    def encode(self, images: Tensor, need_weights: bool = False, interpolate_pos_encoding: bool = False) -> Tensor:
        """The encoder's output sequence, after the final LayerNorm (Hugging Face's ``last_hidden_state``).

        Args:
            images: float pixels (B, C, H, W), H = W = ``image_size`` (any multiples of ``patch_size`` with
                ``interpolate_pos_encoding``).
            need_weights: keep each layer's attention weights (B, H, T, T) in ``layers[l].last_self_weights``.
            interpolate_pos_encoding: accept another image size, resizing the position table to its grid.

        Returns:
            Hidden states (B, T, D): position 0 is [CLS], then the patches in row-major order.

        Raises:
            TypeError: ``images`` is not a floating-point tensor.
            ValueError: ``images`` is not (B, C, H, W) with C = ``n_channels``, or has another size than
                ``image_size`` without ``interpolate_pos_encoding``.
        """
        x = self.embeddings(images, interpolate_pos_encoding)  # (B, T, D)
        for layer in self.layers:
            x = layer(x, need_weights=need_weights)  # (B, T, D): no mask, every token sees every token
        return self.norm(x)  # (B, T, D)

    def pool(self, hidden: Tensor) -> Tensor:
        """One vector per image from the encoder output (B, T, D): the [CLS] token, or the patch mean: (B, D)."""
        if self.config.pool == "cls":
            return hidden[:, 0]  # (B, D)
        return hidden[:, 1:].mean(dim=1)  # (B, D): the patches only, [CLS] left out

    def forward(self, images: Tensor, need_weights: bool = False, interpolate_pos_encoding: bool = False) -> Tensor:
        """Class logits (B, n_classes); arguments as in [encode][llmdocs.models.vit.ViT.encode]."""
        hidden = self.encode(images, need_weights, interpolate_pos_encoding)  # (B, T, D)
        return self.head(self.pool(hidden))  # (B, n_classes)

    def attention_weights(self) -> list[Tensor]:
        """Each layer's attention weights (B, H, T, T) from the last call, if it had ``need_weights=True``.

        A call without ``need_weights`` (the fused attention kernel) stores no weights and clears the old ones.

        Raises:
            RuntimeError: the model has not been run with ``need_weights=True``.
        """
        weights = [layer.last_self_weights for layer in self.layers]
        if any(w is None for w in weights):
            raise RuntimeError("no attention weights stored: run the model with need_weights=True first")
        return [w for w in weights if w is not None]


def _init_weights(model: ViT, std: float = 0.02) -> None:
    """Hugging Face's ViT initialisation: truncated N(0, 0.02) for linear and patch weights, the [CLS] token and a
    learned position table; zero biases; LayerNorm (1, 0)."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.trunc_normal_(model.embeddings.cls_token, std=std)
    if isinstance(model.embeddings.pos_embed, nn.Parameter):
        nn.init.trunc_normal_(model.embeddings.pos_embed, std=std)


HEAD_FUSIONS = ("mean", "max", "min")
"""How [attention_rollout][llmdocs.models.vit.attention_rollout] fuses the heads of a layer (the paper: the mean)."""


def attention_rollout(attentions: Tensor | Sequence[Tensor], head_fusion: str = "mean") -> Tensor:
    """Attention rollout: how much each input token flows into each output token through all the layers.

    A residual connection carries a token's own vector past each attention layer, so a layer's mixing matrix is
    half attention, half identity. Fuse the heads, add the identity, renormalise the rows, multiply through:

        A_l = fuse_h(W_l) + I,   A_l[i, :] /= sum_j A_l[i, j]        (= 0.5 W_l + 0.5 I for the mean)
        R = A_L A_{L-1} ... A_1

    ``R[i, j]`` is the share of input token j in output token i; each row sums to one. For a ViT, ``R[0, 1:]``
    reshaped to the grid of patches is the [CLS] token's map of the image.

    Args:
        attentions: per-layer attention weights, first layer first: a tensor (L, H, T, T) or (L, B, H, T, T), or a
            sequence of L tensors (H, T, T) or (B, H, T, T), e.g. what
            [ViT.attention_weights][llmdocs.models.vit.ViT.attention_weights] returns. Rows must be distributions
            (as softmax outputs are).
        head_fusion: how the H heads are fused: ``"mean"`` (the paper), ``"max"`` or ``"min"``.

    Returns:
        The rollout (T, T), or (B, T, T) for batched input.

    Raises:
        TypeError: ``attentions`` is not a floating-point tensor or a sequence of them.
        ValueError: an empty sequence, tensors of different shapes, non-square (T, T) maps, or an unknown
            ``head_fusion``.

    References:
        Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, section 3 (eq. for rollout).

    Examples:
        >>> import torch
        >>> A = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # one head: token 1 reads both tokens equally
        >>> attention_rollout(A[None, None])  # one layer: (A + I) with rows renormalised
        tensor([[1.0000, 0.0000],
                [0.2500, 0.7500]])
        >>> model = ViT(ViTConfig.tiny()).eval()
        >>> _ = model(torch.rand(1, 3, 8, 8), need_weights=True)
        >>> rollout = attention_rollout(model.attention_weights())  # (B, T, T)
        >>> rollout[0, 0, 1:].reshape(2, 2).shape  # [CLS] -> the 2 x 2 grid of patches
        torch.Size([2, 2])
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if isinstance(attentions, Tensor):
        stacked = attentions
    else:
        layers = list(attentions)
        if not layers:
            raise ValueError("attentions is empty: give the attention weights of at least one layer")
        if not all(isinstance(a, Tensor) for a in layers):
            raise TypeError(f"attentions must be tensors, got {[type(a).__name__ for a in layers]}")
        shapes = {tuple(a.shape) for a in layers}
        if len(shapes) > 1:
            raise ValueError(f"every layer's attention must have the same shape, got {sorted(shapes)}")
        stacked = torch.stack(layers)  # (L, [B,] H, T, T)
    if not stacked.is_floating_point():
        raise TypeError(f"attentions must be floating-point weights, got {stacked.dtype}")
    if stacked.dim() not in (4, 5) or stacked.size(-1) != stacked.size(-2):
        raise ValueError(f"attentions must be (L, H, T, T) or (L, B, H, T, T), got {tuple(stacked.shape)}")
    if head_fusion == "mean":
        fused = stacked.mean(dim=-3)  # (L, [B,] T, T)
    elif head_fusion == "max":
        fused = stacked.amax(dim=-3)
    else:
        fused = stacked.amin(dim=-3)
    T = fused.size(-1)
    eye = torch.eye(T, dtype=fused.dtype, device=fused.device)  # the residual path
    mixing = fused + eye  # (L, [B,] T, T)
    mixing = mixing / mixing.sum(dim=-1, keepdim=True)  # rows are distributions again
    rollout = mixing[0]  # ([B,] T, T)
    for layer_mixing in mixing[1:]:
        rollout = layer_mixing @ rollout  # ([B,] T, T): layer l reads what layer l-1 had gathered
    return rollout


@torch.no_grad()
def rollout_map(model: ViT, images: Tensor, head_fusion: str = "mean", mode: str = "bilinear") -> Tensor:
    """Per-pixel attention-rollout maps: how much of each patch flows into what the classifier reads.

    The model runs once with ``need_weights=True`` (in eval mode; its mode is restored afterwards), then

        R = attention_rollout(W_1..W_L)                          (B, T, T), rows sum to one
        m = R[:, 0, 1:]      (pool="cls": the [CLS] row)         (B, P), or the mean of R[:, 1:, 1:]'s rows for
                                                                 pool="mean" (the classifier averages the patches)
        map = upsample(m reshaped to (Gh, Gw)) to (H, W)

    A pixel's value is its patch's share m_i in the pooled vector (the [CLS] column, the token's own share, is
    left out, so a map sums over the patches to less than one). ``"nearest"`` repeats each share over its p x p
    pixels; ``"bilinear"`` (``align_corners=False``) blends neighbouring patches for a smoother overlay. Both keep
    the maps non-negative and a constant map constant.

    Args:
        model: a [ViT][llmdocs.models.vit.ViT].
        images: model inputs (B, C, H, W), normalised as in training, H = W = ``image_size``.
        head_fusion: how [attention_rollout][llmdocs.models.vit.attention_rollout] fuses the heads.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        Maps (B, H, W), float, >= 0, one per image.

    Raises:
        TypeError: ``model`` is not a ViT, or ``images`` not a floating-point tensor.
        ValueError: ``images`` has the wrong shape, or ``head_fusion`` or ``mode`` is unknown.

    References:
        Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, section 3; Dosovitskiy et al.,
        2021, figure 6 and appendix D.8 (rollout maps of a ViT).

    Examples:
        >>> import torch
        >>> model = ViT(ViTConfig.tiny()).eval()
        >>> maps = rollout_map(model, torch.rand(2, 3, 8, 8))  # 8 x 8 pixels, 2 x 2 patches
        >>> maps.shape, bool((maps >= 0).all())
        (torch.Size([2, 8, 8]), True)
        >>> nearest = rollout_map(model, torch.rand(1, 3, 8, 8), mode="nearest")
        >>> bool((nearest[0, :4, :4] == nearest[0, 0, 0]).all())  # one value per 4 x 4 patch
        True
    """
    if not isinstance(model, ViT):
        raise TypeError(f"model must be a ViT, got {type(model).__name__}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    if head_fusion not in HEAD_FUSIONS:  # checked before the forward pass, not after it
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    was_training = model.training
    model.eval()  # no dropout in the attention weights
    try:
        model(images, need_weights=True)  # checks images; keeps each layer's (B, H, T, T) weights
        rollout = attention_rollout(model.attention_weights(), head_fusion)  # (B, T, T)
    finally:
        model.train(was_training)
    B, _, H, W = images.shape
    p = model.config.patch_size
    # (B, P): the [CLS] row without its own column; for pool="mean", the mean of the patch rows it averages
    shares = rollout[:, 0, 1:] if model.config.pool == "cls" else rollout[:, 1:, 1:].mean(dim=1)
    grid = shares.reshape(B, 1, H // p, W // p)  # (B, 1, Gh, Gw), row-major as the patches
    pixels = torch.nn.functional.interpolate(grid, size=(H, W), mode=mode)  # (B, 1, H, W)
    return pixels[:, 0]  # (B, H, W)
