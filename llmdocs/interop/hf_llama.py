"""Copy weights between [Llama][llmdocs.models.llama.Llama] and Hugging Face's ``LlamaForCausalLM``, both directions.

This is the only place where Hugging Face's Llama parameter names appear (the table ``HF_LLAMA_NAMES``). Unlike
GPT-2's, the mapping is a pure renaming: every weight is an ``nn.Linear`` (``(D_out, D_in)``, nothing transposed),
q, k and v are separate, and both use the "rotate-half" RoPE layout (a GGUF file's interleaved q/k rows are
unpermuted by [interop.gguf][llmdocs.interop.gguf] before they get here). With tied embeddings the head is the
embedding matrix: a state dict that stores it once (``save_pretrained``, GGUF) gets ``lm_head.weight`` back from
``model.embed_tokens.weight``.

Hugging Face's model built here runs attention on the ``"sdpa"`` path: its ``"eager"`` path takes the softmax in
float32 even for float64 inputs, and a float64 equivalence proof needs both sides in float64. Its RMSNorm computes in
float32 whatever the dtype, and so does ours ([LlamaBlock][llmdocs.models.llama.LlamaBlock]). ``transformers`` is
imported only inside the functions that build its objects. Nothing here downloads or runs remote code.

Examples:
    >>> import torch
    >>> from llmdocs.models.llama import Llama, LlamaConfig
    >>> from llmdocs.testing import assert_equivalent
    >>> _ = torch.manual_seed(0)
    >>> ours = Llama(LlamaConfig.tiny()).eval().double()  # an equivalence proof runs in float64
    >>> theirs = to_hf(ours)  # float64 too
    >>> ids = torch.randint(0, 64, (2, 5))
    >>> assert_equivalent(ours(ids), theirs(ids).logits, depth=ours.config.n_layers)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from llmdocs.models.llama import Llama, LlamaConfig

if TYPE_CHECKING:
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers import LlamaForCausalLM

__all__ = [
    "HF_LLAMA_NAMES",
    "config_from_hf",
    "config_to_hf",
    "from_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "to_hf",
]

HF_LLAMA_NAMES: dict[str, str] = {
    "tok_embed": "model.embed_tokens",  # E_tok (V, D)
    "blocks.{i}.norm1": "model.layers.{i}.input_layernorm",  # RMSNorm before attention
    "blocks.{i}.self_attn.q_proj": "model.layers.{i}.self_attn.q_proj",  # (H Dh, D)
    "blocks.{i}.self_attn.k_proj": "model.layers.{i}.self_attn.k_proj",  # (H_kv Dh, D)
    "blocks.{i}.self_attn.v_proj": "model.layers.{i}.self_attn.v_proj",  # (H_kv Dh, D)
    "blocks.{i}.self_attn.out_proj": "model.layers.{i}.self_attn.o_proj",  # (D, H Dh)
    "blocks.{i}.norm2": "model.layers.{i}.post_attention_layernorm",  # RMSNorm before the feed-forward
    "blocks.{i}.ff.gate_proj": "model.layers.{i}.mlp.gate_proj",  # W (F, D), SiLU-gated
    "blocks.{i}.ff.up_proj": "model.layers.{i}.mlp.up_proj",  # V (F, D)
    "blocks.{i}.ff.down_proj": "model.layers.{i}.mlp.down_proj",  # W_2 (D, F)
    "norm": "model.norm",  # the final RMSNorm
    "lm_head": "lm_head",  # (V, D); the same tensor as model.embed_tokens when tied
}
"""Our module path -> Hugging Face Llama's (``{i}`` is the block index; ``.weight`` follows both)."""

_TO_HF = {k.removeprefix("blocks.{i}."): v.removeprefix("model.layers.{i}.") for k, v in HF_LLAMA_NAMES.items()}
_FROM_HF = {v: k for k, v in _TO_HF.items()}


def _rename(key: str, table: Mapping[str, str], blocks: str, their_blocks: str) -> str:
    """Rename one parameter: ``{blocks}{i}.{rest}.{leaf}`` -> ``{their_blocks}{i}.{table[rest]}.{leaf}``."""
    module, _, leaf = key.rpartition(".")
    if module.startswith(blocks):
        i, _, rest = module.removeprefix(blocks).partition(".")
        if rest in table:
            return f"{their_blocks}{i}.{table[rest]}.{leaf}"
    elif module in table:
        return f"{table[module]}.{leaf}"
    raise KeyError(f"{key!r} is not a Llama parameter (see HF_LLAMA_NAMES)")


def state_dict_to_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a [Llama][llmdocs.models.llama.Llama] state dict to ``LlamaForCausalLM``'s names (no tensor changes).

    Raises:
        KeyError: A name that is not a Llama parameter.

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> hf = state_dict_to_hf(Llama(LlamaConfig.tiny(n_layers=1)).state_dict())
        >>> [k.removeprefix("model.layers.0.") for k in hf if ".layers.0." in k][:3]
        ['input_layernorm.weight', 'self_attn.q_proj.weight', 'self_attn.k_proj.weight']
        >>> [k for k in hf if not k.startswith("model.layers.")]
        ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight']
    """
    return {_rename(key, _TO_HF, "blocks.", "model.layers."): value for key, value in state.items()}


def state_dict_from_hf(state: Mapping[str, Tensor], tie_embeddings: bool) -> dict[str, Tensor]:
    """Rename a ``LlamaForCausalLM`` state dict (or [load_gguf_state_dict][llmdocs.interop.gguf.load_gguf_state_dict]'s)
    to our names.

    Args:
        state: Hugging Face names -> tensors. With ``tie_embeddings`` a ``lm_head.weight`` is not needed (a tied
            ``save_pretrained`` file and a GGUF file store the matrix once) and is ignored if present.
        tie_embeddings: whether the model's head is its token embedding.

    Returns:
        Our names -> the same tensors; with ``tie_embeddings``, ``lm_head.weight`` is ``tok_embed.weight``.

    Raises:
        KeyError: A name that is not a Llama parameter, or an untied state dict without ``lm_head.weight``.

    Examples:
        >>> import torch
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> model = Llama(LlamaConfig.tiny(n_layers=1))
        >>> back = state_dict_from_hf(state_dict_to_hf(model.state_dict()), tie_embeddings=True)
        >>> all(torch.equal(back[k], v) for k, v in model.state_dict().items())
        True
    """
    out = {
        _rename(key, _FROM_HF, "model.layers.", "blocks."): value
        for key, value in state.items()
        if not (tie_embeddings and key == "lm_head.weight")
    }
    if tie_embeddings:
        out["lm_head.weight"] = out["tok_embed.weight"]
    elif "lm_head.weight" not in out:
        raise KeyError("an untied Llama state dict needs 'lm_head.weight' (pass tie_embeddings=True if it is tied)")
    return out


def _rope_parameters(d: Mapping[str, Any]) -> dict[str, Any]:
    """RoPE settings of a config dict: ``rope_parameters`` (transformers >= 5) or ``rope_theta`` + ``rope_scaling``."""
    params = dict(d.get("rope_parameters") or {})
    legacy = dict(d.get("rope_scaling") or {})
    if "type" in legacy:
        legacy["rope_type"] = legacy.pop("type")
    params = {**legacy, **params}
    params.setdefault("rope_theta", d.get("rope_theta", 10000.0))
    params.setdefault("rope_type", "default")
    return params


def config_to_hf(config: LlamaConfig) -> HFLlamaConfig:
    """The ``transformers.LlamaConfig`` of the same architecture, on the ``"sdpa"`` attention path.

    Raises:
        ValueError: ``rope_scaling="ntk"``: Hugging Face's ``"dynamic"`` NTK RoPE rescales with the sequence
            length, a different function from our fixed NTK-aware base.

    Examples:
        >>> hf = config_to_hf(LlamaConfig.smollm2_135m())
        >>> hf.num_key_value_heads, hf.intermediate_size, hf.rope_parameters["rope_theta"], hf.tie_word_embeddings
        (3, 1536, 100000.0, True)
    """
    from transformers import LlamaConfig as HFLlamaConfig

    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(config.rope_theta)}
    if config.rope_scaling == "linear":
        rope = {**rope, "rope_type": "linear", "factor": float(config.rope_scaling_factor)}
    elif config.rope_scaling is not None:
        raise ValueError(
            f"rope_scaling={config.rope_scaling!r} has no Hugging Face equivalent (its 'dynamic' NTK rescales with the "
            "sequence length): only None and 'linear' convert"
        )
    return HFLlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.d_head,
        hidden_act="silu",
        max_position_embeddings=config.context_length,
        rms_norm_eps=config.rms_norm_eps,
        tie_word_embeddings=config.tie_embeddings,
        rope_parameters=rope,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=config.dropout,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation="sdpa",
    )


def config_from_hf(hf_config: HFLlamaConfig | Mapping[str, Any]) -> LlamaConfig:
    """The [LlamaConfig][llmdocs.models.llama.LlamaConfig] of a ``transformers.LlamaConfig`` (or its ``config.json``).

    Variants our model does not implement raise ``ValueError``: biases, another activation than SiLU, a head
    width other than D / H, RoPE types other than default and linear.

    Examples:
        >>> config_from_hf({"model_type": "llama"}) == LlamaConfig.llama_7b()  # transformers' defaults: LLaMA-7B
        True
    """
    d = dict(hf_config) if isinstance(hf_config, Mapping) else hf_config.to_dict()
    if d.get("model_type", "llama") != "llama":
        raise ValueError(f"not a Llama config: model_type={d.get('model_type')!r}")
    if d.get("attention_bias", False) or d.get("mlp_bias", False):
        raise ValueError("attention_bias / mlp_bias: our Llama has no biases")
    if d.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act={d.get('hidden_act')!r} is not supported: Llama's SwiGLU gates with SiLU")
    d_model, n_heads = d.get("hidden_size", 4096), d.get("num_attention_heads", 32)
    if d.get("head_dim") not in (None, d_model // n_heads):
        raise ValueError(f"head_dim={d['head_dim']} != hidden_size / num_attention_heads = {d_model // n_heads}")
    rope = _rope_parameters(d)
    if rope["rope_type"] not in ("default", "linear"):
        raise ValueError(f"rope_type={rope['rope_type']!r} is not supported: only 'default' and 'linear' convert")
    linear = rope["rope_type"] == "linear"
    return LlamaConfig(
        vocab_size=d.get("vocab_size", 32000),
        context_length=d.get("max_position_embeddings", 2048),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=d.get("num_key_value_heads") or n_heads,
        n_layers=d.get("num_hidden_layers", 32),
        d_ff=d.get("intermediate_size", 11008),
        rope_theta=float(rope["rope_theta"]),
        rope_scaling="linear" if linear else None,
        rope_scaling_factor=float(rope["factor"]) if linear else 1.0,
        rms_norm_eps=d.get("rms_norm_eps", 1e-6),
        dropout=float(d.get("attention_dropout") or 0.0),
        tie_embeddings=d.get("tie_word_embeddings", False),
    )


def from_hf(hf_model: LlamaForCausalLM) -> Llama:
    """A [Llama][llmdocs.models.llama.Llama] with the weights of ``hf_model`` (same training/eval mode, same dtype).

    Args:
        hf_model: a ``transformers.LlamaForCausalLM`` (built from a config, or loaded with ``from_pretrained``).

    Returns:
        Our model, on the CPU; its logits equal ``hf_model(ids).logits`` (float64: to ~1e-13).

    Examples:
        >>> import torch
        >>> from transformers import LlamaConfig as HFLlamaConfig, LlamaForCausalLM
        >>> from llmdocs.testing import assert_equivalent
        >>> hf_config = HFLlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                           num_attention_heads=4, num_key_value_heads=1, attn_implementation="sdpa")
        >>> theirs = LlamaForCausalLM(hf_config).eval()
        >>> ours = from_hf(theirs.double())  # same dtype: float64, where equivalence is proven
        >>> ours.config.n_kv_heads, ours.training, ours.lm_head.weight.dtype
        (1, False, torch.float64)
        >>> ids = torch.randint(0, 50, (2, 6))
        >>> assert_equivalent(ours(ids), theirs(ids).logits, depth=2)
    """
    if type(hf_model).__name__ != "LlamaForCausalLM":
        raise TypeError(f"hf_model must be a transformers LlamaForCausalLM, got {type(hf_model).__name__}")
    model = Llama(config_from_hf(hf_model.config)).to(hf_model.dtype)
    model.load_state_dict(state_dict_from_hf(hf_model.state_dict(), model.config.tie_embeddings))
    return model.train(hf_model.training)


def to_hf(model: Llama) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` with the weights of ``model`` (same training/eval mode, same dtype), built from a config.

    Args:
        model: our [Llama][llmdocs.models.llama.Llama].

    Returns:
        The Hugging Face model on the ``"sdpa"`` attention path (see the module example).

    Raises:
        TypeError: ``model`` is not our Llama (a LadderDecoder's last step loads into one: ``Llama(LlamaConfig(...,
            n_kv_heads=n_heads)).load_state_dict(ladder.state_dict())``).
        ValueError: A config without a Hugging Face equivalent (``rope_scaling="ntk"``).
    """
    from transformers import LlamaForCausalLM

    if not isinstance(model, Llama):
        raise TypeError(f"model must be a llmdocs Llama, got {type(model).__name__}")

    hf_model = LlamaForCausalLM(config_to_hf(model.config)).to(next(model.parameters()).dtype)
    hf_model.load_state_dict(state_dict_to_hf(model.state_dict()))
    return hf_model.train(model.training)
