"""Data for the course: installed data packages, real corpora, a generated task, batching and a cache.

Nothing is downloaded at run time: real data sets come from pip packages listed in
`requirements/assets.txt` (found by path, never imported), and the quick task is generated.
"""

from llmdocs.data.assets import DATA_PACKAGES, MissingDataPackageError, data_file, package_dir
from llmdocs.data.batches import IndexedBatches
from llmdocs.data.cache import cache_dir, cache_key, cached_tensors
from llmdocs.data.dates import date_pair, date_task_split, make_date_pairs
from llmdocs.data.shakespeare import load_shakespeare, shakespeare_plays
from llmdocs.data.tatoeba import TATOEBA_ATTRIBUTION, load_tatoeba_en_es, split_by_source
from llmdocs.data.vocab import SPECIAL_TOKENS, CharVocab, encode_pairs

__all__ = [
    "DATA_PACKAGES",
    "SPECIAL_TOKENS",
    "TATOEBA_ATTRIBUTION",
    "CharVocab",
    "IndexedBatches",
    "MissingDataPackageError",
    "cache_dir",
    "cache_key",
    "cached_tensors",
    "data_file",
    "date_pair",
    "date_task_split",
    "encode_pairs",
    "load_shakespeare",
    "load_tatoeba_en_es",
    "make_date_pairs",
    "package_dir",
    "shakespeare_plays",
    "split_by_source",
]
