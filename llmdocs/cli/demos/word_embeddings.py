"""Tour demo of the word-embeddings chapter: a CBOW model trained in seconds on Shakespeare, and what it learnt.

Word2vec's CBOW with negative sampling (the chapter's recipe: SparseAdam, batches of 1,024, two epochs) learns one
50-number vector per word from the first 50,000 lines of Shakespeare. Words used in similar company end up close:
the demo prints the nearest neighbours of a few words, answers an analogy, and draws a map of three groups of
words on the vectors' two principal axes.
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.cli.registry import progress, register, save_demo_figure

__all__ = ["word_embeddings_demo"]

PROBES = ("father", "eye", "king", "three", "he")
GROUPS = {
    "family": ["father", "mother", "son", "daughter", "brother", "sister", "wife", "husband"],
    "body": ["eye", "eyes", "hand", "heart", "head", "face", "tongue", "ear"],
    "numbers": ["two", "three", "four", "five", "ten", "hundred", "thousand"],
}


@register(
    name="word-embeddings",
    title="Word embeddings: CBOW before Transformers",
    page="chapters/word-embeddings.md",
    description=(
        "Train word2vec's CBOW with negative sampling on 50,000 lines of Shakespeare in a few seconds, print the "
        "nearest neighbours of a few words and an analogy, and map family words, body parts and numbers in 2-D."
    ),
)
def word_embeddings_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Train a small CBOW model, print neighbours and an analogy, save a 2-D map of word groups.

    Args:
        out_dir: Folder for the figure.
        fast: 10,000 lines and one epoch (about half a second; too little text for good neighbours).

    Returns:
        The SVG word map.
    """
    import torch

    from llmdocs.viz import CourseFigure
    from llmdocs.word2vec.data import Vocabulary, keep_probabilities, load_shakespeare_words, noise_distribution
    from llmdocs.word2vec.model import Word2Vec, Word2VecConfig, build_optimizer, train_word2vec
    from llmdocs.word2vec.vectors import WordVectors

    n_lines, epochs = (10_000, 1) if fast else (50_000, 2)
    sentences = load_shakespeare_words(max_sentences=n_lines)  # lower-cased words, one list per line
    vocab = Vocabulary.build(sentences, min_count=5)
    ids = vocab.encode(sentences)
    n_words = sum(len(s) for s in ids)
    print(f"{n_lines:,} lines of Shakespeare: {n_words:,} running words, {len(vocab):,} words seen at least 5 times")

    torch.manual_seed(0)
    model = Word2Vec(Word2VecConfig(len(vocab), dim=50, negative=5))  # CBOW + negative sampling
    bar = progress(desc="CBOW", total=epochs * n_words, unit="word", unit_scale=True)
    history = train_word2vec(
        model,
        ids,
        keep_probabilities(vocab.counts, sample=1e-3),
        noise_distribution(vocab.counts),
        window=5,
        epochs=epochs,
        batch_size=1024,
        optimizer=build_optimizer(model, lr=0.03),
        seed=0,
        on_batch=lambda row: bar.update(row["words"]),
    )
    bar.close()
    for row in history:
        print(f"epoch {row['epoch']}: loss {row['loss']:.3f}, {row['words_per_second']:,.0f} words/s")

    wv = WordVectors(vocab.words, model.vectors)
    print("\nnearest neighbours (cosine similarity):")
    for word in (w for w in PROBES if w in wv):
        print(f"  {word:7} " + ", ".join(f"{w} ({s:.2f})" for w, s in wv.nearest(word, 5)))
    if all(w in wv for w in ("he", "his", "her")):
        answer = ", ".join(w for w, _ in wv.analogy("he", "his", "her", k=3))
        print(f"\nhis : he :: her : ?   top 3: {answer}   (king - man + woman needs far more text)")
    if fast:
        print("(--fast: one short epoch, so the neighbours are still mostly noise)")

    groups = {name: [w for w in words if w in wv] for name, words in GROUPS.items()}
    words = [w for group in groups.values() for w in group]
    points = wv.project_2d(words)  # (N, 2): the first two principal axes
    fig = CourseFigure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for name, group in groups.items():
        rows = [words.index(w) for w in group]
        ax.scatter(points[rows, 0], points[rows, 1], label=name)
        for r in rows:
            ax.annotate(words[r], (points[r, 0].item(), points[r, 1].item()), fontsize=8)
    ax.legend()
    ax.set_title(f"CBOW vectors of {n_lines:,} lines of Shakespeare, first two principal axes")
    print(f"\nthe map places {len(words)} words of {len(groups)} groups; words of a group should gather")
    return [save_demo_figure(fig, out_dir, "word-embeddings-map")]
