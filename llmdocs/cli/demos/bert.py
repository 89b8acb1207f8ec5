"""Tour demo of the BERT chapter: fill in the blanks with the shipped BERTs, then filter SMS spam.

`bert-wikitext2` and `bert-people-daily` are small BERTs (4 layers, D 256 and D 128) pre-trained from scratch with
masked language modelling and next-sentence prediction on a 2-core CPU; each fills a `[MASK]` in sentences it never
saw.
`minilm-sms-spam` is the real all-MiniLM-L6-v2 encoder fine-tuned on the UCI SMS spam collection, run by the
package's own BERT: the demo classifies a few messages and prints the spam probability.
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.cli.registry import register, save_demo_figure

__all__ = ["bert_demo"]

FILL_MASK = {
    "bert-wikitext2": ["the band released their first [MASK] in 1994 .", "he was born in london , [MASK] ."],
    "bert-people-daily": ["房间很干净，[MASK]务也很好。", "这家酒店的服务很[MASK]。"],
}
MESSAGES = [
    "WINNER!! You have won a £1000 prize. Call 09061701461 now to claim, T&Cs apply",
    "Are we still on for dinner at 7? I'll bring the wine",
    "URGENT: your mobile number was selected for a free holiday. Text YES to 81010",
    "Sorry, can't talk now. Call you after the meeting",
]


@register(
    name="bert",
    title="BERT: a bidirectional encoder",
    page="chapters/bert.md",
    description=(
        "Fill [MASK] gaps with the two small BERTs pre-trained from scratch (English WikiText-2, Chinese People's "
        "Daily), then classify text messages with all-MiniLM-L6-v2 fine-tuned on SMS spam."
    ),
)
def bert_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Fill-mask with the shipped BERTs and spam classification with the shipped classifier, plus a figure.

    Args:
        out_dir: Folder for the figure.
        fast: One sentence per BERT and two messages instead of all of them.

    Returns:
        The SVG figure: the top-5 candidates of the first English gap and the spam probabilities.
    """
    import torch

    from llmdocs.generation import fill_mask
    from llmdocs.pretrained import load_bert, load_minilm_classifier
    from llmdocs.viz import CourseFigure

    first: list[tuple[str, float]] = []
    for name, sentences in FILL_MASK.items():
        model, tokenizer, meta = load_bert(name)
        results = meta["results"]
        steps, run = 0, results
        while run:  # a model continued with --init-from counts the steps of every phase
            steps, run = steps + run["steps"], run.get("init_run")
        print(
            f"model: {name}, {results['params']:,} parameters, {steps:,} pre-training steps, "
            f"held-out MLM accuracy {results['val_mlm_accuracy']:.1%}"
        )
        for sentence in sentences[:1] if fast else sentences:
            top = fill_mask(model, tokenizer, sentence, top_k=5)[0]
            first = first or top
            print(f"  {sentence}\n    -> " + ", ".join(f"{token} {p:.2f}" for token, p in top))

    print("  (small models pre-trained for half an hour to an hour on one core: the chapter's section 'Pre-training on")
    print("   a laptop CPU' measures what they have learnt, and what they have not)")

    classifier, tokenizer, meta = load_minilm_classifier("minilm-sms-spam")
    print(f"\nmodel: minilm-sms-spam, test accuracy {meta['results']['test_accuracy']:.2%}")
    messages = MESSAGES[:2] if fast else MESSAGES
    batch = tokenizer.encode_batch(messages, max_length=128, truncation=True)
    with torch.no_grad():
        logits = classifier(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]))
    spam = logits.softmax(dim=-1)[:, meta["labels"].index("spam")].tolist()  # (N,)
    for message, p in zip(messages, spam, strict=True):
        print(f"  {'spam' if p > 0.5 else 'ham ':4} p(spam)={p:.3f}  {message}")

    fig = CourseFigure(figsize=(10, 3.4), layout="constrained")  # long message labels need their own room
    left, right = fig.subplots(1, 2)
    tokens, probs = zip(*first, strict=True)
    left.barh(range(len(tokens))[::-1], probs)
    left.set_yticks(range(len(tokens))[::-1], tokens)
    left.set_xlabel("probability")
    left.set_title(f"fill-mask: {FILL_MASK['bert-wikitext2'][0]}", fontsize=8)
    right.barh(range(len(messages))[::-1], spam, color=["C3" if p > 0.5 else "C2" for p in spam])
    right.set_yticks(range(len(messages))[::-1], [m[:28] + "..." for m in messages], fontsize=7)
    right.set_xlim(0, 1)
    right.set_xlabel("p(spam)")
    right.set_title("minilm-sms-spam")
    return [save_demo_figure(fig, out_dir, "bert-demo")]
