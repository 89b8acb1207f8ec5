"""Images as sequences: cut an image into patches, embed each patch, add a [CLS] token and positions.

A Vision Transformer reads an image of H x W pixels as a sequence of P = (H / p)(W / p) patches of p x p pixels
(Dosovitskiy et al., 2021, section 3.1, eq. 1):

    z_0 = [x_class; x_p^1 E; x_p^2 E; ...; x_p^P E] + E_pos,    E in R^{(p^2 C) x D},  E_pos in R^{(P + 1) x D}

Each flattened patch x_p^i (p^2 C numbers) is multiplied by the same matrix E. That *is* a convolution with a
p x p kernel and stride p: the two readings share their weights, a (D, C, p, p) kernel flattened to a (D, C p^2)
matrix ([PatchEmbedding][llmdocs.nn.patch_embedding.PatchEmbedding] computes both).

Positions come from a learned table (the paper) or from a fixed 2-D sine-cosine table (MoCo v3, MAE, "Better
plain ViT baselines"): half the channels encode the row, half the column. A learned table made for one image size
is stretched to another by bicubic interpolation over the grid of patches (section 3.2,
[interpolate_pos_embed][llmdocs.nn.patch_embedding.interpolate_pos_embed]); the [CLS] position is kept as it is.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021,
    sections 3.1 and 3.2, appendix D.4 (position embeddings).
    Chen, Xie and He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021 (fixed 2-D
    sine-cosine position embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.nn.image_checks import check_images
from llmdocs.nn.positional import sinusoidal_table

__all__ = [
    "POS_EMBEDDINGS",
    "ImageEmbedding",
    "PatchEmbedding",
    "interpolate_pos_embed",
    "patchify",
    "sincos_2d_table",
    "unpatchify",
]

POS_EMBEDDINGS = ("learned", "sincos")
"""Kinds of position embedding an [ImageEmbedding][llmdocs.nn.patch_embedding.ImageEmbedding] accepts."""


def _as_grid(grid: int | tuple[int, int], name: str = "grid") -> tuple[int, int]:
    """``grid`` as a (rows, columns) pair of ints >= 1; an int means a square grid."""
    pair = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if len(pair) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in pair):
        raise ValueError(f"{name} must be an integer >= 1 or a pair (rows, columns) of them, got {grid!r}")
    return pair[0], pair[1]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping p x p patches, each flattened to a vector of C p^2 numbers.

    Patches are numbered row by row (left to right, then top to bottom); inside a patch the numbers are ordered
    channel first, then row, then column: (c, i, j), the order of a ``Conv2d`` kernel's (C, p, p) weights.

    Args:
        images: (B, C, H, W) with H and W multiples of ``patch_size``.
        patch_size: p, the side of a patch in pixels.

    Returns:
        Patches (B, P, C p^2) with P = (H / p)(W / p).

    Raises:
        ValueError: H or W is not a multiple of ``patch_size`` (or ``images`` is not (B, C, H, W)).

    Examples:
        >>> import torch
        >>> images = torch.arange(16.0).view(1, 1, 4, 4)  # one 4 x 4 image, pixels 0..15
        >>> patchify(images, patch_size=2)[0]  # four patches of 2 x 2 pixels
        tensor([[ 0.,  1.,  4.,  5.],
                [ 2.,  3.,  6.,  7.],
                [ 8.,  9., 12., 13.],
                [10., 11., 14., 15.]])
    """
    check_images(images, n_channels=None, patch_size=patch_size)
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, Gh, p, Gw, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, Gh, Gw, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, P, C p^2)


def unpatchify(patches: Tensor, patch_size: int, grid: int | tuple[int, int]) -> Tensor:
    """Put patches back into images: the inverse of [patchify][llmdocs.nn.patch_embedding.patchify].

    Args:
        patches: (B, P, C p^2), patches in row-major order.
        patch_size: p.
        grid: (Gh, Gw) patches per column and per row (an int for a square grid); Gh Gw = P.

    Returns:
        Images (B, C, Gh p, Gw p).

    Raises:
        ValueError: the shape of ``patches`` does not fit ``patch_size`` and ``grid``.

    Examples:
        >>> import torch
        >>> images = torch.randn(2, 3, 8, 12)
        >>> torch.equal(unpatchify(patchify(images, 4), 4, grid=(2, 3)), images)
        True
    """
    Gh, Gw = _as_grid(grid)
    p = patch_size
    if patches.dim() != 3 or patches.size(1) != Gh * Gw or patches.size(2) % (p * p):
        raise ValueError(
            f"patches must be (B, P={Gh * Gw}, C*{p}*{p}) for grid=({Gh}, {Gw}), patch_size={p}; "
            f"got {tuple(patches.shape)}"
        )
    B, _, CPP = patches.shape  # (B, P, C p^2)
    C = CPP // (p * p)
    x = patches.reshape(B, Gh, Gw, C, p, p)  # (B, Gh, Gw, C, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, Gh, p, Gw, p)
    return x.reshape(B, C, Gh * p, Gw * p)  # (B, C, H, W)


class PatchEmbedding(nn.Module):
    """Embed every p x p patch with one linear map E: a convolution with kernel p and stride p.

        x_p^i E + b,  i = 1..P        (Dosovitskiy et al., 2021, eq. 1)

    ``forward`` runs the strided convolution; ``forward_as_linear`` cuts the patches out
    ([patchify][llmdocs.nn.patch_embedding.patchify]) and multiplies them by the same weights seen as a
    (D, C p^2) matrix. Both give the same (B, P, D) result; the convolution is the faster of the two.

    Args:
        patch_size: p, the side of a patch in pixels.
        n_channels: C, channels of the input images.
        d_model: D, the width of a patch embedding.

    Shape:
        images (B, C, H, W) -> (B, P, D), P = (H / p)(W / p), patches in row-major order.

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.1 (eq. 1); their released code
        computes it as this convolution.

    Examples:
        >>> import torch
        >>> from llmdocs.testing import assert_equivalent
        >>> embed = PatchEmbedding(patch_size=4, n_channels=1, d_model=16).double()
        >>> images = torch.rand(2, 1, 28, 28, dtype=torch.float64)
        >>> embed(images).shape  # 7 x 7 = 49 patches of width 16
        torch.Size([2, 49, 16])
        >>> assert_equivalent(embed(images), embed.forward_as_linear(images))  # one map, two readings
    """

    def __init__(self, patch_size: int, n_channels: int, d_model: int) -> None:
        super().__init__()
        for name, value in (("patch_size", patch_size), ("n_channels", n_channels), ("d_model", d_model)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.patch_size = patch_size
        self.n_channels = n_channels
        self.d_model = d_model
        self.proj = nn.Conv2d(n_channels, d_model, kernel_size=patch_size, stride=patch_size)  # E: (D, C, p, p)

    def forward(self, images: Tensor) -> Tensor:
        """Embed the patches of ``images`` (B, C, H, W) with the strided convolution: (B, P, D)."""
        check_images(images, self.n_channels, patch_size=self.patch_size)
        x = self.proj(images)  # (B, D, Gh, Gw): one output pixel per patch
        return x.flatten(2).transpose(1, 2)  # (B, P, D), row-major over the grid

    def forward_as_linear(self, images: Tensor) -> Tensor:
        """The same map read as "cut into patches, then one ``nn.Linear``": (B, C, H, W) -> (B, P, D)."""
        check_images(images, self.n_channels, patch_size=self.patch_size)
        patches = patchify(images, self.patch_size)  # (B, P, C p^2)
        weight = self.proj.weight.flatten(1)  # (D, C, p, p) -> (D, C p^2), the same (c, i, j) order
        return F.linear(patches, weight, self.proj.bias)  # (B, P, D)


def sincos_2d_table(grid: int | tuple[int, int], d_model: int) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings: one row per patch of a (Gh, Gw) grid.

    The first D/2 channels are the 1-D sinusoidal encoding of the patch's row, the last D/2 that of its column
    (each [sinusoidal_table][llmdocs.nn.positional.sinusoidal_table] of width D/2):

        PE(y, x) = [PE_1d(y); PE_1d(x)]

    Nothing is learned, and a table for any other grid is computed exactly instead of interpolated.

    Args:
        grid: (Gh, Gw) patches per column and per row, or an int for a square grid.
        d_model: D, a multiple of 4 (a sine and a cosine per frequency, for each of the two axes).

    Returns:
        Float tensor (Gh Gw, D), rows in the row-major order of the patches, values in [-1, 1].

    Raises:
        ValueError: ``d_model`` is not a positive multiple of 4, or ``grid`` is not a valid grid.

    References:
        Chen, Xie and He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021 (fixed
        2-D sine-cosine position embeddings); Dosovitskiy et al., 2021, appendix D.4 (1-D, 2-D and relative
        embeddings compared).

    Examples:
        >>> table = sincos_2d_table((2, 3), d_model=8)
        >>> table.shape
        torch.Size([6, 8])
        >>> table[0].tolist()  # patch (0, 0): sin(0) = 0, cos(0) = 1 on both axes
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        >>> bool((table[3, :4] == table[4, :4]).all())  # patches (1, 0) and (1, 1) share their row half
        True
    """
    if not isinstance(d_model, int) or d_model < 4 or d_model % 4:
        raise ValueError(f"d_model must be a positive multiple of 4 for 2-D sine-cosine positions, got {d_model!r}")
    Gh, Gw = _as_grid(grid)
    rows = sinusoidal_table(Gh, d_model // 2)  # (Gh, D/2)
    cols = sinusoidal_table(Gw, d_model // 2)  # (Gw, D/2)
    row_half = rows[:, None, :].expand(Gh, Gw, -1)  # (Gh, Gw, D/2): the same along a row of patches
    col_half = cols[None, :, :].expand(Gh, Gw, -1)  # (Gh, Gw, D/2): the same down a column
    table = torch.cat([row_half, col_half], dim=-1)  # (Gh, Gw, D)
    return table.reshape(Gh * Gw, d_model)  # (P, D)


def interpolate_pos_embed(
    pos_embed: Tensor,
    new_grid: int | tuple[int, int],
    old_grid: int | tuple[int, int] | None = None,
    n_prefix: int = 1,
) -> Tensor:
    """Resize a learned position table to another grid of patches by bicubic interpolation.

    The patch rows of the table are laid out on their (Gh, Gw) grid as a D-channel image, resized to the new grid
    with ``F.interpolate(mode="bicubic", align_corners=False)``, and flattened back; the ``n_prefix`` rows in front
    ([CLS]) belong to no patch and are kept as they are. This is how a ViT pre-trained at one resolution is
    fine-tuned or evaluated at another (Dosovitskiy et al., 2021, section 3.2), and what Hugging Face's
    ``ViTEmbeddings.interpolate_pos_encoding`` computes. The same grid returns ``pos_embed`` itself.

    Args:
        pos_embed: (1, n_prefix + Gh Gw, D), the table as a ViT stores it.
        new_grid: (h, w) patches per column and per row of the new images (an int for a square grid).
        old_grid: (Gh, Gw) of the table; None means square (Gh = Gw = sqrt of the patch rows).
        n_prefix: rows in front of the patch rows: 1 for the [CLS] token.

    Returns:
        (1, n_prefix + h w, D).

    Raises:
        ValueError: ``pos_embed`` is not (1, T, D), or its rows do not match ``old_grid`` (or a square grid).

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.2 ("Fine-tuning and higher
        resolution").

    Examples:
        >>> import torch
        >>> pos = torch.randn(1, 1 + 7 * 7, 16)  # [CLS] + a 7 x 7 grid (28 x 28 images, patch 4)
        >>> interpolate_pos_embed(pos, new_grid=8).shape  # 32 x 32 images
        torch.Size([1, 65, 16])
        >>> interpolate_pos_embed(pos, new_grid=7) is pos
        True
    """
    if pos_embed.dim() != 3 or pos_embed.size(0) != 1:
        raise ValueError(f"pos_embed must have shape (1, T, D), got {tuple(pos_embed.shape)}")
    _, T, D = pos_embed.shape
    n_patches = T - n_prefix
    if old_grid is None:
        side = round(n_patches**0.5)
        if side * side != n_patches:
            raise ValueError(f"pos_embed has {n_patches} patch rows, not a square grid: pass old_grid=(Gh, Gw)")
        old_grid = side
    Gh, Gw = _as_grid(old_grid, "old_grid")
    if Gh * Gw != n_patches:
        raise ValueError(f"pos_embed has {n_patches} patch rows (after {n_prefix} prefix rows), not {Gh}x{Gw}")
    h, w = _as_grid(new_grid, "new_grid")
    if (h, w) == (Gh, Gw):
        return pos_embed
    prefix, patch_pos = pos_embed[:, :n_prefix], pos_embed[:, n_prefix:]  # (1, n_prefix, D), (1, P, D)
    patch_pos = patch_pos.reshape(1, Gh, Gw, D).permute(0, 3, 1, 2)  # (1, D, Gh, Gw): an image of D channels
    patch_pos = F.interpolate(patch_pos, size=(h, w), mode="bicubic", align_corners=False)  # (1, D, h, w)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h * w, D)  # (1, h w, D)
    return torch.cat([prefix, patch_pos], dim=1)  # (1, n_prefix + h w, D)


class ImageEmbedding(nn.Module):
    """The input sequence of a ViT: a [CLS] token, then the patch embeddings, plus position embeddings.

        z_0 = Dropout([x_class; x_p^1 E; ...; x_p^P E] + E_pos)        (Dosovitskiy et al., 2021, eq. 1)

    The [CLS] token x_class is one learned vector (as BERT's [CLS]): after the encoder, its output summarises the
    image. ``pos_embedding="learned"`` makes E_pos a parameter (1, 1 + P, D), resized by bicubic interpolation for
    other image sizes; ``"sincos"`` makes it the fixed [sincos_2d_table][llmdocs.nn.patch_embedding.sincos_2d_table]
    (a non-persistent buffer, recomputed for any grid) with a zero row for [CLS].

    Args:
        image_size: side of the (square) images the position table is made for, in pixels.
        patch_size: p, a divisor of ``image_size``.
        n_channels: C.
        d_model: D.
        pos_embedding: ``"learned"`` or ``"sincos"``.
        dropout: dropout on the summed embeddings (training only).

    Attributes:
        grid_size: patches per side, ``image_size // patch_size``.
        n_patches: P = grid_size^2.

    Shape:
        images (B, C, H, W) -> (B, 1 + P, D); position 0 is [CLS], then the patches in row-major order.

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.1 (eq. 1) and 3.2.

    Examples:
        >>> import torch
        >>> embed = ImageEmbedding(image_size=28, patch_size=4, n_channels=1, d_model=16)
        >>> embed(torch.rand(2, 1, 28, 28)).shape  # [CLS] + 49 patches
        torch.Size([2, 50, 16])
        >>> embed(torch.rand(2, 1, 32, 32), interpolate_pos_encoding=True).shape  # a larger image: 64 patches
        torch.Size([2, 65, 16])
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        n_channels: int,
        d_model: int,
        pos_embedding: str = "learned",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {POS_EMBEDDINGS}, got {pos_embedding!r}")
        self.patch_embed = PatchEmbedding(patch_size, n_channels, d_model)  # checks the three sizes
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ValueError(f"image_size must be an integer >= 1, got {image_size!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.n_channels = n_channels
        self.pos_embedding = pos_embedding
        self.grid_size = image_size // patch_size
        self.n_patches = self.grid_size**2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))  # x_class
        self.pos_embed: Tensor  # E_pos (1, 1 + P, D)
        if pos_embedding == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.n_patches, d_model))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer("pos_embed", self._sincos(self.grid_size, self.grid_size, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _sincos(h: int, w: int, d_model: int) -> Tensor:
        """The fixed table (1, 1 + h w, D): a zero row for [CLS], then the 2-D sine-cosine rows."""
        table = sincos_2d_table((h, w), d_model)  # (h w, D)
        return torch.cat([torch.zeros(1, d_model), table])[None]  # (1, 1 + h w, D)

    def position_table(self, grid: int | tuple[int, int]) -> Tensor:
        """E_pos for images of a (h, w) grid of patches: (1, 1 + h w, D); the stored table for the native grid.

        A learned table is interpolated ([interpolate_pos_embed][llmdocs.nn.patch_embedding.interpolate_pos_embed]),
        a sine-cosine one computed for the new grid.
        """
        h, w = _as_grid(grid)
        if (h, w) == (self.grid_size, self.grid_size):
            return self.pos_embed
        if self.pos_embedding == "learned":
            return interpolate_pos_embed(self.pos_embed, (h, w), old_grid=self.grid_size)
        table = self._sincos(h, w, self.pos_embed.size(-1))
        return table.to(device=self.pos_embed.device, dtype=self.pos_embed.dtype)

    def forward(self, images: Tensor, interpolate_pos_encoding: bool = False) -> Tensor:
        """Embed ``images`` (B, C, H, W) into the sequence (B, 1 + P, D).

        Args:
            images: float pixels, H = W = ``image_size``; other sizes (multiples of ``patch_size``) only with
                ``interpolate_pos_encoding``.
            interpolate_pos_encoding: accept images of another size and resize the position table to their grid.

        Raises:
            TypeError: ``images`` is not a floating-point tensor.
            ValueError: wrong rank or channels, or another image size without ``interpolate_pos_encoding``.
        """
        check_images(images, self.n_channels)
        B, _, H, W = images.shape
        if not interpolate_pos_encoding and (self.image_size, self.image_size) != (H, W):
            raise ValueError(
                f"images are {H}x{W} pixels but the model was built for image_size={self.image_size} (its position "
                f"embeddings cover a {self.grid_size}x{self.grid_size} grid of patches): resize the images, or pass "
                "interpolate_pos_encoding=True"
            )
        patches = self.patch_embed(images)  # (B, P, D)
        cls = self.cls_token.expand(B, -1, -1)  # (B, 1, D)
        x = torch.cat([cls, patches], dim=1)  # (B, 1 + P, D)
        x = x + self.position_table((H // self.patch_size, W // self.patch_size))  # (B, 1 + P, D)
        return self.dropout(x)
