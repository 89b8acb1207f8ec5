"""Word2vec from scratch (chapter "Word embeddings"): CBOW and skip-gram with negative sampling.

- [data][llmdocs.word2vec.data]: tokens, the vocabulary, subsampling, the noise distribution, context windows;
- [model][llmdocs.word2vec.model]: the model, its two losses and the training function;
- [vectors][llmdocs.word2vec.vectors]: what training gives: neighbours, analogies, the word2vec text format.
"""

from llmdocs.word2vec.data import Vocabulary, load_people_daily_words, load_shakespeare_words, tokenize_english
from llmdocs.word2vec.model import Word2Vec, Word2VecConfig, train_word2vec
from llmdocs.word2vec.vectors import WordVectors, load_word2vec_format

__all__ = [
    "Vocabulary",
    "Word2Vec",
    "Word2VecConfig",
    "WordVectors",
    "load_people_daily_words",
    "load_shakespeare_words",
    "load_word2vec_format",
    "tokenize_english",
    "train_word2vec",
]
