"""Reproducibility: one seed for every random number generator, the device, and RNG snapshots.

A run is reproducible when every source of randomness is seeded: Python's `random` (data shuffling in plain
Python), NumPy (generated tasks), and torch (weight initialisation, dropout, `randperm`). Resuming a run
*exactly* additionally needs the RNG **state** at the moment of the checkpoint, which
[`rng_state`][llmdocs.training.seed.rng_state] returns as plain lists (JSON, no pickle).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["resolve_device", "rng_state", "seed_everything", "set_rng_state"]

_DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's `random`, NumPy and torch (CPU and every CUDA device) with one integer.

    Args:
        seed: A non-negative integer.

    Returns:
        A fresh CPU `torch.Generator` seeded with `seed`, for code that prefers an explicit generator
        (e.g. `torch.randperm(n, generator=g)`) over the global one.

    Raises:
        ValueError: If `seed` is negative.
        TypeError: If `seed` is not an `int`.

    Examples:
        >>> g = seed_everything(0)
        >>> a = torch.rand(2)
        >>> _ = seed_everything(0)
        >>> torch.equal(a, torch.rand(2))
        True
        >>> torch.randint(0, 10, (3,), generator=g).shape
        torch.Size([3])
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seeding accepts 32-bit seeds only
    torch.manual_seed(seed)  # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a `torch.device`; `"auto"` picks CUDA, then Apple MPS, then the CPU.

    Args:
        name: One of `"auto"`, `"cpu"`, `"cuda"`, `"mps"` (an index such as `"cuda:1"` is accepted), or a
            `torch.device`.

    Returns:
        The device.

    Raises:
        ValueError: If the name is unknown or the requested accelerator is not available.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("auto").type in {"cpu", "cuda", "mps"}
        True
    """
    if isinstance(name, torch.device):
        return name
    kind = name.split(":", 1)[0].lower()
    if kind not in _DEVICE_NAMES:
        raise ValueError(f"device must be one of {', '.join(_DEVICE_NAMES)}, got {name!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available on this machine")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but Apple MPS is not available")
    return torch.device(name.lower())


def rng_state() -> dict[str, Any]:
    """Snapshot every global RNG as JSON-friendly lists (no pickle, no tensors).

    Returns:
        A dict with keys `"python"`, `"numpy"`, `"torch"` and `"cuda"` (one list per CUDA device,
        empty on a CPU-only machine).

    Examples:
        >>> _ = seed_everything(1)
        >>> state = rng_state()
        >>> a = torch.rand(3)
        >>> set_rng_state(state)
        >>> torch.equal(a, torch.rand(3))
        True
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNGs from a snapshot made by [`rng_state`][llmdocs.training.seed.rng_state].

    Args:
        state: The dict returned by `rng_state` (possibly after a JSON round trip).

    Examples:
        >>> set_rng_state(rng_state())
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
