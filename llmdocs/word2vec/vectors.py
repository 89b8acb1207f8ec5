"""Trained word vectors: nearest neighbours, analogies, a 2-D map, and the word2vec text format.

`WordVectors` plays the part of gensim's `KeyedVectors`: a list of words and a (V, D) matrix. Similarity is the
cosine, $\\cos(a, b) = a \\cdot b / (\\lVert a\\rVert \\lVert b\\rVert)$; the analogy "a is to b as c is to ?" is
answered by the word closest to $a - b + c$ after normalising the three vectors (the 3CosAdd rule of Mikolov
et al., 2013, which gensim's `most_similar(positive=[a, c], negative=[b])` uses), the query words excluded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["WordVectors", "load_word2vec_format"]


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors.

    Attributes:
        words: V words; row `i` of `vectors` belongs to `words[i]`.
        vectors: (V, D) float tensor.

    Examples:
        >>> wv = WordVectors(("king", "queen", "man", "woman"),
        ...                  torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.9, 1.1], [1.0, -1.2]]))
        >>> wv.analogy("king", "man", "woman")  # king - man + woman
        [('queen', 0.997)]
    """

    words: tuple[str, ...]
    vectors: torch.Tensor

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError("words is empty: WordVectors needs at least one word")
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"vectors must be ({len(self.words)}, D), got {tuple(self.vectors.shape)}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("words must be unique")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @cached_property
    def index(self) -> dict[str, int]:
        """Word -> row."""
        return {w: i for i, w in enumerate(self.words)}

    def _row(self, word: str) -> int:
        if not isinstance(word, str):
            raise TypeError(f"words are str, got {type(word).__name__}")
        index = self.index
        if word not in index:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self.words)} words)")
        return index[word]

    def vector(self, word: str) -> torch.Tensor:
        """(D,) the vector of a word; `KeyError` if it is unknown."""
        return self.vectors[self._row(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return F.cosine_similarity(self.vector(a), self.vector(b), dim=0).item()

    def _closest(self, query: torch.Tensor, exclude: Sequence[int], k: int) -> list[tuple[str, float]]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} must be a positive int (how many words to return)")
        scores = F.normalize(self.vectors.float(), dim=1) @ F.normalize(query.float(), dim=0)  # (V,)
        scores[list(exclude)] = -float("inf")
        top = scores.topk(min(k, len(self.words) - len(set(exclude))))
        return [(self.words[i], round(s, 4)) for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)]

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The `k` words of highest cosine similarity to `word` (itself excluded), best first."""
        row = self._row(word)
        return self._closest(self.vectors[row], [row], k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """Answers to "b is to a as c is to ?": the words closest to $\\hat a - \\hat b + \\hat c$.

        The three query words are excluded from the answers, as in gensim and the word2vec analogy test.
        """
        rows = [self._row(w) for w in (a, b, c)]
        unit = F.normalize(self.vectors[rows].float(), dim=1)  # (3, D)
        return self._closest(unit[0] - unit[1] + unit[2], rows, k)

    def project_2d(self, words: Sequence[str]) -> torch.Tensor:
        """(N, 2) PCA coordinates of the given words (principal axes of their centred, normalised vectors).

        Examples:
            >>> wv = WordVectors(("a", "b", "c"), torch.eye(3))
            >>> wv.project_2d(["a", "b", "c"]).shape
            torch.Size([3, 2])
        """
        if len(words) < 2:
            raise ValueError("a map needs at least 2 words")
        points = F.normalize(self.vectors[[self._row(w) for w in words]].float(), dim=1)  # (N, D)
        centred = points - points.mean(dim=0)
        _, _, Vh = torch.linalg.svd(centred, full_matrices=False)  # Vh: (min(N, D), D)
        coords = centred @ Vh[:2].T  # (N, 2)
        signs = torch.sign(coords[coords.abs().argmax(dim=0), torch.arange(2)])  # fix SVD's sign ambiguity
        return coords * signs

    def save_word2vec_format(self, path: str | os.PathLike[str]) -> Path:
        """Write the word2vec text format: a `V D` header, then one `word v1 ... vD` line per word.

        gensim reads it with `KeyedVectors.load_word2vec_format(path, binary=False)`.
        """
        if any(not w or any(ch.isspace() for ch in w) for w in self.words):
            raise ValueError("the text format separates fields by spaces: words must be non-empty, without spaces")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as file:
            file.write(f"{len(self.words)} {self.vectors.shape[1]}\n")
            for word, row in zip(self.words, self.vectors.tolist(), strict=True):
                file.write(word + " " + " ".join(f"{v:.6g}" for v in row) + "\n")
        return path


def load_word2vec_format(path: str | os.PathLike[str]) -> WordVectors:
    """Read the word2vec text format (as written by word2vec, gensim or `WordVectors.save_word2vec_format`).

    Raises:
        ValueError: If the header or a line does not match the format.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     wv = WordVectors(("a", "b"), torch.tensor([[0.5, 1.0], [2.0, -1.0]]))
        ...     again = load_word2vec_format(wv.save_word2vec_format(Path(tmp) / "v.txt"))
        >>> again.words, torch.equal(again.vectors, wv.vectors)
        (('a', 'b'), True)
    """
    with Path(path).open(encoding="utf-8") as file:
        header = file.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(f"{path}: the first line must be '<vocab size> <dim>', got {' '.join(header)!r}")
        V, D = map(int, header)
        words, rows = [], []
        for number, line in enumerate(file, start=2):
            parts = line.rstrip("\n").split(" ")
            if len(parts) != D + 1:
                raise ValueError(f"{path}:{number}: expected a word and {D} numbers, got {len(parts)} fields")
            words.append(parts[0])
            rows.append([float(v) for v in parts[1:]])
    if len(words) != V:
        raise ValueError(f"{path}: the header announces {V} words, the file has {len(words)}")
    return WordVectors(tuple(words), torch.tensor(rows, dtype=torch.float32).reshape(V, D))
