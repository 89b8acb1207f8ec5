"""Resumable batches: a batch is a pure function of its index (shuffled per epoch, sharded per rank).

An iterator over a shuffled data set hides its position inside its state. Here the `i`-th batch is
computed from `i` alone: epoch `e = i // batches_per_epoch` uses the permutation
`randperm(N, generator=seed + e)`, and batch `i` takes the next `world_size * batch_size` indices of it, of
which rank `r` keeps slice `r`. So

* the data position of a run is a single integer (stored in the checkpoint), and resuming at index `i`
  reads exactly what the unbroken run would have read;
* the `world_size` shards of batch `i` together are the single-process batch of size
  `world_size * batch_size`: data-parallel training with averaged gradients equals single-process
  training on the big batch.
"""

from __future__ import annotations

import torch

__all__ = ["IndexedBatches"]


class IndexedBatches:
    """Callable `i -> tuple of tensors`: micro-batch `i` of a per-epoch shuffled data set.

    Incomplete final groups of each epoch are dropped, so every batch has exactly `batch_size` rows.

    Args:
        *tensors: Tensors with the same first dimension `N` (e.g. source ids `(N, S)`, target ids `(N, T)`).
        batch_size: Rows per batch *per rank*.
        seed: Seed of the per-epoch permutations.
        rank: This process's rank.
        world_size: Number of data-parallel processes.
        shuffle: If False, epochs read the data in order.

    Raises:
        TypeError: If an input is not a tensor, or a size is not an int.
        ValueError: On no tensors, 0-d tensors, mismatched lengths, or fewer than `world_size * batch_size` rows.

    Examples:
        >>> x = torch.arange(10).unsqueeze(1)  # (N, 1)
        >>> batches = IndexedBatches(x, batch_size=4, seed=0)
        >>> len(batches)  # batches per epoch
        2
        >>> (xb,) = batches(0)
        >>> xb.shape
        torch.Size([4, 1])
        >>> torch.equal(batches(5)[0], batches(5)[0])  # a pure function of the index
        True
        >>> shards = [IndexedBatches(x, batch_size=2, rank=r, world_size=2)(0)[0] for r in (0, 1)]
        >>> torch.equal(torch.cat(shards), xb)  # the shards of batch 0 form the big batch 0
        True
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if not tensors:
            raise ValueError("IndexedBatches needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"tensors[{i}] must be a torch.Tensor (rows = examples), got {type(t).__name__}")
            if t.dim() == 0:
                raise ValueError(f"tensors[{i}] is 0-d: a data set needs a first dimension of examples")
        for name, value in (("batch_size", batch_size), ("rank", rank), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors must share the first dimension, got {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if n < batch_size * world_size:
            raise ValueError(f"{n} rows are fewer than batch_size * world_size = {batch_size * world_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self._epoch = -1
        self._order = torch.arange(n)

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.tensors[0].shape[0] // (self.batch_size * self.world_size)

    def indices(self, index: int) -> torch.Tensor:
        """Row indices of micro-batch `index` for this rank.

        Args:
            index: Micro-batch index (0-based, across epochs).

        Returns:
            `(batch_size,)` int64 row indices.

        Raises:
            ValueError: If `index` is negative.
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        epoch, within = divmod(index, len(self))
        if epoch != self._epoch:  # cache one permutation: consecutive indices share an epoch
            n = self.tensors[0].shape[0]
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed + epoch)
                self._order = torch.randperm(n, generator=generator)
            self._epoch = epoch
        start = (within * self.world_size + self.rank) * self.batch_size
        return self._order[start : start + self.batch_size]

    def __call__(self, index: int) -> tuple[torch.Tensor, ...]:
        """Micro-batch `index`: each tensor's rows at `indices(index)`.

        Args:
            index: Micro-batch index.

        Returns:
            One `(batch_size, ...)` tensor per input tensor.
        """
        rows = self.indices(index)
        return tuple(t[rows] for t in self.tensors)
