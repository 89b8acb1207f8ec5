"""Measuring what a layer costs: wall time, peak memory and parameter counts.

The chapters quote costs (attention is quadratic in the sequence length, a KV cache makes decoding linear, ...)
and every such number is measured by these functions when the page is built, never typed in by hand.

Peak memory on CPU comes from the PyTorch profiler's allocation events: the running sum of allocations minus
frees, maximised over the measured call. On CUDA it is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from llmdocs.nn.attention import MultiHeadAttention, causal_mask

__all__ = [
    "attention_cost",
    "count_parameters",
    "cpu_model",
    "interleaved_times",
    "machine_description",
    "peak_memory_bytes",
    "peak_rss_bytes",
    "seconds_per_call",
]


def cpu_model() -> str:
    """The processor's name, from ``/proc/cpuinfo`` on Linux, else what ``platform`` knows.

    Examples:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description() -> str:
    """What a timing depends on, in one line for a benchmark record.

    Returns:
        e.g. ``"x86_64, AMD EPYC 9B14, 2 CPU(s), 2 torch thread(s), torch 2.13.0+cpu (AVX512 kernels),
        Python 3.11.7"``: the architecture, processor, cores, the threads torch uses now, the torch build and the
        kernel level it picked (``ATEN_CPU_CAPABILITY``; see Conventions, "Numerical tolerances").

    Examples:
        >>> "CPU(s)" in machine_description() and "torch" in machine_description()
        True
    """
    return (
        f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} CPU(s), {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), "
        f"Python {platform.python_version()}"
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``, each shared tensor counted once.

    Args:
        model: Any module.
        trainable_only: Count only parameters with ``requires_grad``.

    Returns:
        The parameter count.

    Examples:
        >>> count_parameters(nn.Linear(4, 3))  # 4 * 3 weights + 3 biases
        15
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ profiler's own start/stop log lines, which it writes straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated while ``fn()`` runs, above what was allocated before the call.

    Args:
        fn: The work to measure, e.g. a forward and backward pass.
        device: Where the work runs (``cpu`` or ``cuda``).

    Returns:
        Peak extra bytes.

    Examples:
        >>> peak_memory_bytes(lambda: torch.zeros(1024, 1024)) >= 4 * 1024 * 1024  # one float32 MiB x 4
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _quiet_native_stderr(), torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    # Each op records the bytes it allocated minus those it freed (its "self" memory); frees between ops are
    # "[memory]" events. Replaying them in time order gives the allocation curve, whose maximum is the peak.
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory so far (the operating system's high-water mark), in bytes.

    Unlike [peak_memory_bytes][llmdocs.profiling.peak_memory_bytes] it needs no profiler and costs nothing, so a
    training script can report how much memory its run needed; it counts everything the process touched (Python,
    the model, the data, the allocator's cache), not only tensors.

    Returns:
        Bytes, or None where ``resource.getrusage`` does not exist (Windows).

    Examples:
        >>> peak = peak_rss_bytes()
        >>> peak is None or peak > 10 * 2**20  # Python and torch alone hold more than 10 MiB
        True
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def seconds_per_call(fn: Callable[[], object], repeats: int = 5, device: torch.device | str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call.

    Args:
        fn: The work to time.
        repeats: Number of timed calls (at least 1).
        device: Where the work runs; CUDA work is synchronised before the clock is read.

    Returns:
        Seconds per call.

    Examples:
        >>> seconds_per_call(lambda: sum(range(1000)), repeats=3) < 1.0
        True
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    device = torch.device(device)
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(
    calls: dict[str, Callable[[], Any]],
    repeats: int,
    device: torch.device | str = "cpu",
    after_each: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times of several calls taken in turn (a, b, a, b, ...) after one warm-up call each: a fair comparison.

    Timing one side after the other lets a change of machine load (another process, the CPU's clock) favour one
    of them; interleaving spreads it over both. Compare the medians (or the minima) of the lists.

    Args:
        calls: name -> the work to time.
        repeats: timed rounds (at least 1); every call runs once per round.
        device: where the work runs; CUDA work is synchronised before the clock is read.
        after_each: called with the name after every call, the warm-up included (a progress bar's update).

    Returns:
        ``(times, results)``: the seconds of every timed call per name, and what each warm-up call returned.

    Raises:
        ValueError: If ``repeats`` < 1.

    Examples:
        >>> times, results = interleaved_times({"a": lambda: sum(range(100)), "b": lambda: 1}, repeats=3)
        >>> [len(t) for t in times.values()], results
        ([3, 3], {'a': 4950, 'b': 1})
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    device = torch.device(device)
    results: dict[str, Any] = {}
    for name, call in calls.items():  # warm-up: first-call allocations, lazily built tables, page faults
        results[name] = call()
        if after_each is not None:
            after_each(name)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            if after_each is not None:
                after_each(name)
    return times, results


def attention_cost(
    lengths: list[int],
    d_model: int = 64,
    n_heads: int = 4,
    batch_size: int = 1,
    need_weights: bool = True,
    repeats: int = 3,
) -> list[dict[str, float]]:
    """Measure causal self-attention's forward + backward time and peak memory at several sequence lengths.

    With ``need_weights=True`` the explicit path materialises the (B, H, T, T) weight matrix, so memory grows
    as $T^2$; the fused kernel avoids storing it, but the work is still quadratic.

    Args:
        lengths: Sequence lengths T to measure.
        d_model: Model width D.
        n_heads: Number of heads H.
        batch_size: Batch size B.
        need_weights: Use the explicit path that returns the attention weights.
        repeats: Timed repeats per length.

    Returns:
        One row per length: ``length``, ``seconds``, ``peak_bytes`` and the ``weights_bytes`` that one
        (B, H, T, T) float32 matrix takes.

    Examples:
        >>> rows = attention_cost([8, 16], repeats=1)
        >>> [r["length"] for r in rows], rows[1]["weights_bytes"] / rows[0]["weights_bytes"]
        ([8, 16], 4.0)
    """
    torch.manual_seed(0)
    layer = MultiHeadAttention(d_model, n_heads)
    rows = []
    for T in lengths:
        x = torch.randn(batch_size, T, d_model, requires_grad=True)  # (B, T, D)
        mask = causal_mask(T)  # (T, T)

        def step(x: torch.Tensor = x, mask: torch.Tensor = mask) -> None:
            out, _ = layer(x, mask=mask, need_weights=need_weights)  # (B, T, D)
            out.sum().backward()

        rows.append(
            {
                "length": T,
                "seconds": seconds_per_call(step, repeats),
                "peak_bytes": float(peak_memory_bytes(step)),
                "weights_bytes": float(batch_size * n_heads * T * T * 4),
            }
        )
    return rows
