"""Saving and loading a trained model: ``model.safetensors`` + ``config.json`` (+ ``meta.json``), atomically.

A *checkpoint* (``llmdocs.training.checkpoint``) holds everything needed to continue a run: optimizer state,
RNG states, the data position. An *exported model* holds only what is needed to use it: the weights, the model's
config dataclass, and metadata such as the vocabulary. It is what the chapters and labs load.

Nothing here unpickles: weights are safetensors, everything else JSON, and the config class is looked up in a
fixed table of llmdocs configs, never imported from a name stored in the file.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from llmdocs.models.bert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.ladder import LadderConfig, LadderDecoder
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.models.resnet import ResNet, ResNetConfig
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer

__all__ = [
    "MODEL_CLASSES",
    "WEIGHTS_DTYPES",
    "load_encoder",
    "load_language_model",
    "load_pretrained",
    "save_encoder",
    "save_language_model",
    "save_pretrained",
    "write_folder_atomically",
]

Tokenizer = CharTokenizer | BPETokenizer
LanguageModel = GPT | LadderDecoder | Llama
"""The decoder-only language models that :func:`save_language_model` stores with their tokenizer."""

MODEL_CLASSES: dict[str, tuple[type, type[nn.Module]]] = {
    "Transformer": (TransformerConfig, Transformer),
    "GPT": (GPTConfig, GPT),
    "BertModel": (BertConfig, BertModel),
    "BertForPreTraining": (BertConfig, BertForPreTraining),
    "BertForSequenceClassification": (BertConfig, BertForSequenceClassification),
    "ViT": (ViTConfig, ViT),
    "ResNet": (ResNetConfig, ResNet),
    "Llama": (LlamaConfig, Llama),
    "LadderDecoder": (LadderConfig, LadderDecoder),
}
"""Model name -> (config dataclass, model class) of every model that :func:`load_pretrained` can build."""

WEIGHTS_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
"""The dtypes :func:`save_pretrained` can store weights in. float8 formats are refused: cast without the per-tensor
scales that float8 training keeps, they round a weight to 2-3 significant bits."""


def save_pretrained(
    directory: str | os.PathLike[str],
    model: nn.Module,
    config: Any,
    meta: dict[str, Any] | None = None,
    write_extra: Callable[[Path], None] | None = None,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` to ``directory`` (replacing it atomically: a crash never leaves half a model).

    Args:
        directory: Target folder.
        model: One of the models in :data:`MODEL_CLASSES`.
        config: Its config dataclass.
        meta: Extra JSON-friendly data (vocabulary, training command, scores).
        write_extra: Called with the temporary folder before it is moved into place, to add files that belong
            to the model (a tokenizer): they appear atomically together with the weights.
        weights_dtype: Store the floating-point weights in this dtype, e.g. ``torch.float16`` for a file half the
            size (a model shipped in the package); :func:`load_pretrained` loads them into the float32 model.
            One of :data:`WEIGHTS_DTYPES`; None keeps the model's own dtype.

    Returns:
        The folder written.

    Raises:
        TypeError: If ``model`` and ``config`` are not a known pair, or ``weights_dtype`` is not a floating dtype.
        ValueError: If ``weights_dtype`` is a floating dtype outside :data:`WEIGHTS_DTYPES` (float8).
        FileExistsError, ValueError: As :func:`write_folder_atomically` for a ``directory`` it refuses.

    Examples:
        >>> import tempfile
        >>> cfg = TransformerConfig.tiny()
        >>> path = save_pretrained(tempfile.mkdtemp() + "/m", Transformer(cfg), cfg, {"note": "untrained"})
        >>> sorted(p.name for p in path.iterdir())
        ['config.json', 'meta.json', 'model.safetensors']
    """
    name = type(model).__name__
    if name not in MODEL_CLASSES or not isinstance(config, MODEL_CLASSES[name][0]):
        raise TypeError(f"model {name} with config {type(config).__name__} is not a known pair: {list(MODEL_CLASSES)}")
    supported = ", ".join(map(str, WEIGHTS_DTYPES))
    if weights_dtype is not None and not (isinstance(weights_dtype, torch.dtype) and weights_dtype.is_floating_point):
        raise TypeError(f"weights_dtype must be a floating torch.dtype, one of {supported}; got {weights_dtype!r}")
    if weights_dtype is not None and weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype={weights_dtype} is not supported: store the weights as one of {supported}")

    def write(tmp: Path) -> None:
        stored = model if weights_dtype is None else copy.deepcopy(model).to(weights_dtype)
        save_model(stored, str(tmp / "model.safetensors"))  # stores tied weights once
        saved: dict[str, Any] = {"model": name, "config": dataclasses.asdict(config)}
        if weights_dtype is not None:
            saved["weights_dtype"] = str(weights_dtype).removeprefix("torch.")
        if isinstance(model, BertForSequenceClassification):
            saved["n_classes"] = model.n_classes  # the one constructor argument besides the config
        (tmp / "config.json").write_text(json.dumps(saved, indent=2), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta or {}, indent=2, ensure_ascii=False), encoding="utf-8")
        if write_extra is not None:
            write_extra(tmp)

    return write_folder_atomically(directory, write)


MODEL_MARKERS = ("config.json", "finetuned.json")
"""Files that mark a folder written by this module or by ``llmdocs.finetuning.save_finetuned``: only such a folder
(or an empty one) is replaced by :func:`write_folder_atomically`."""


def write_folder_atomically(directory: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder with ``write(tmp)``, then put it in place of ``directory`` in one rename.

    A crash (or an exception in ``write``) never leaves a half-written folder: readers see the old folder or the
    complete new one. The files get ordinary permissions (mkdtemp makes private ones).

    Args:
        directory: The folder to create or replace.
        write: Writes the folder's files into the temporary folder it is given.

    Returns:
        The folder written.

    Raises:
        FileExistsError: If ``directory`` is an existing file, or a non-empty folder without a saved model in it
            (its files would be lost).
        ValueError: If ``directory`` is the current working directory or a folder that holds it (``"."``): the
            replacement would delete the folder the program runs in.

    Examples:
        >>> import tempfile
        >>> path = write_folder_atomically(tempfile.mkdtemp() + "/out", lambda tmp: (tmp / "a.txt").write_text("a"))
        >>> [p.name for p in path.iterdir()]
        ['a.txt']
    """
    directory = Path(directory)
    target = Path(os.path.abspath(directory))  # "." and "a/.." get a real name and parent; symlinks stay as they are
    _refuse_working_directory(directory, target)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file, not a folder: give a new or an existing folder's path")
    if directory.is_dir() and any(directory.iterdir()) and not any((directory / f).is_file() for f in MODEL_MARKERS):
        raise FileExistsError(
            f"{directory} is a folder that holds no saved model (no {' or '.join(MODEL_MARKERS)}): writing there "
            "would replace everything in it; give a new folder, or a model folder to overwrite"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)  # mkdtemp makes a private folder; a saved model is an ordinary, shareable one
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _refuse_working_directory(directory: Path, target: Path) -> None:
    """The folder a program runs in cannot be replaced: it would go on in a deleted folder."""
    try:
        cwd = Path.cwd().resolve()
    except FileNotFoundError:  # the working directory is already gone: nothing to protect
        return
    real = target.parent.resolve() / target.name  # a symlink named by `directory` is replaced, not its target
    if real == cwd or real in cwd.parents:
        what = "the current working directory" if real == cwd else f"a folder that holds the working directory {cwd}"
        raise ValueError(
            f"directory={str(directory)!r} is {what}: saving replaces the whole folder, which would delete the "
            f"folder this program runs in; give a new sub-folder, e.g. {str(directory / 'model')!r}"
        )


def _read_json(path: Path) -> Any:
    """A JSON file's content; a damaged file is a ValueError that names it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): a damaged file; save the model again") from error


def _read_saved_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a :func:`save_pretrained` folder, checked: a known ``"model"`` and a ``"config"`` dict."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} has no config.json: not a folder written by save_pretrained")
    saved = _read_json(config_file)
    if not isinstance(saved, dict):
        raise ValueError(f"{config_file} must hold a JSON object with 'model' and 'config', got {type(saved).__name__}")
    if saved.get("model") not in MODEL_CLASSES:
        raise ValueError(f"{config_file}: unknown model {saved.get('model')!r}, expected one of {list(MODEL_CLASSES)}")
    if not isinstance(saved.get("config"), dict):
        raise ValueError(f"{config_file} lacks the model's settings: its 'config' must be an object, a damaged file")
    return saved


def _build_config(config_file: Path, config_cls: type, settings: dict[str, Any]) -> tuple[Any, list[str]]:
    """``config_cls(**settings)``, with errors that name the file; also the fields left at their defaults."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings) - set(fields))
    missing = [
        name
        for name, f in fields.items()
        if f.init and name not in settings and dataclasses.MISSING is f.default is f.default_factory  # no default
    ]
    if unknown or missing:
        raise ValueError(
            f"{config_file}: 'config' does not fit {config_cls.__name__}"
            + (f"; unknown keys {unknown}" if unknown else "")
            + (f"; missing keys {missing}" if missing else "")
        )
    try:
        config = config_cls(**settings)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_file}: {error}") from error
    return config, [name for name in fields if name not in settings and fields[name].init]


def load_pretrained(directory: str | os.PathLike[str]) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Build the model saved in ``directory`` and load its weights (eval mode, CPU).

    Args:
        directory: A folder written by :func:`save_pretrained`.

    Returns:
        ``(model, config, meta)``.

    Raises:
        FileNotFoundError: If ``config.json`` or ``model.safetensors`` is missing.
        ValueError: If a file is damaged: ``config.json`` or ``meta.json`` is not JSON, ``config.json`` names an
            unknown model or lacks keys, or ``model.safetensors`` is truncated or does not fit the config. The
            message names the file.

    Examples:
        >>> import tempfile, torch
        >>> cfg = TransformerConfig.tiny()
        >>> model = Transformer(cfg)
        >>> path = save_pretrained(tempfile.mkdtemp() + "/m", model, cfg)
        >>> loaded, loaded_cfg, meta = load_pretrained(path)
        >>> loaded_cfg == cfg, all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
        (True, True)
    """
    directory = Path(directory)
    config_file = directory / "config.json"
    saved = _read_saved_config(directory)
    config_cls, model_cls = MODEL_CLASSES[saved["model"]]
    config, defaulted = _build_config(config_file, config_cls, saved["config"])
    try:
        model = model_cls(config, n_classes=saved["n_classes"]) if "n_classes" in saved else model_cls(config)
    except (TypeError, ValueError) as error:  # a damaged n_classes
        raise ValueError(f"{config_file}: {error}") from error
    weights_file = directory / "model.safetensors"
    if not weights_file.is_file():
        raise FileNotFoundError(f"{directory} has no model.safetensors (the weights): a damaged or incomplete folder")
    try:
        load_model(model, str(weights_file))
    except SafetensorError as error:
        raise ValueError(
            f"{weights_file} is not a readable safetensors file ({error}): truncated or damaged; save the model again"
        ) from error
    except RuntimeError as error:  # missing, unexpected or differently shaped tensors
        fallback = f" ({config_file} lacks {defaulted}: their defaults were used)" if defaulted else ""
        first = str(error).strip().splitlines()
        raise ValueError(
            f"{weights_file} does not fit the {saved['model']} that {config_file} describes{fallback}: "
            + " ".join(line.strip() for line in first[1:3] or first[:1])
        ) from error
    meta_file = directory / "meta.json"
    meta = _read_json(meta_file) if meta_file.is_file() else {}
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file} must hold a JSON object, got {type(meta).__name__}")
    return model.eval(), config, meta


def save_language_model(
    directory: str | os.PathLike[str], model: LanguageModel, tokenizer: Tokenizer, meta: dict[str, Any] | None = None
) -> Path:
    """:func:`save_pretrained` for a language model (a [GPT][llmdocs.models.gpt.GPT], a
    [LadderDecoder][llmdocs.models.ladder.LadderDecoder] or a [Llama][llmdocs.models.llama.Llama]) together with the
    character or BPE tokenizer it was trained with.

    A character tokenizer is stored as its character list in ``meta.json``; a BPE tokenizer as GPT-2-format files
    in ``tokenizer/`` (``vocab.json``, ``merges.txt``), written inside the same atomic replacement.

    Args:
        directory: Target folder.
        model: The language model.
        tokenizer: Its [CharTokenizer][llmdocs.tokenizers.CharTokenizer] or
            [BPETokenizer][llmdocs.tokenizers.BPETokenizer].
        meta: Extra JSON-friendly data (training command, scores, samples).

    Returns:
        The folder written.

    Examples:
        >>> import tempfile
        >>> tok = CharTokenizer.train("to be or not to be")
        >>> model = GPT(GPTConfig.tiny(tok.vocab_size))
        >>> path = save_language_model(tempfile.mkdtemp() + "/lm", model, tok, {"note": "untrained"})
        >>> loaded, loaded_tok, meta = load_language_model(path)
        >>> loaded_tok.decode(loaded_tok.encode("not to be")), meta["note"]
        ('not to be', 'untrained')
    """
    if not isinstance(tokenizer, CharTokenizer | BPETokenizer):
        raise TypeError(f"tokenizer must be a CharTokenizer or a BPETokenizer, got {type(tokenizer).__name__}")
    if tokenizer.vocab_size != model.config.vocab_size:
        vocab_size = model.config.vocab_size
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model's vocab_size={vocab_size}")
    if isinstance(tokenizer, CharTokenizer):
        spec: dict[str, Any] = {"type": "char", "chars": tokenizer.chars, "unk_token": tokenizer.unk_token}
        return save_pretrained(directory, model, model.config, {**(meta or {}), "tokenizer": spec})
    spec = {"type": "bpe", "folder": "tokenizer"}
    meta = {**(meta or {}), "tokenizer": spec}
    return save_pretrained(directory, model, model.config, meta, lambda tmp: tokenizer.save(tmp / spec["folder"]))


def load_language_model(directory: str | os.PathLike[str]) -> tuple[LanguageModel, Tokenizer, dict[str, Any]]:
    """The model (eval mode, CPU), its tokenizer and metadata, from a folder of :func:`save_language_model`.

    Args:
        directory: The folder.

    Returns:
        ``(model, tokenizer, meta)``.

    Raises:
        ValueError: If the folder holds a model without a tokenizer, or an unknown tokenizer type.

    Examples:
        >>> import tempfile
        >>> tok = BPETokenizer.train("to be or not to be, that is the question", vocab_size=260)
        >>> path = save_language_model(tempfile.mkdtemp() + "/lm", GPT(GPTConfig.tiny(tok.vocab_size)), tok)
        >>> model, loaded, meta = load_language_model(path)
        >>> loaded.encode("to be") == tok.encode("to be"), meta["tokenizer"]["type"]
        (True, 'bpe')
    """
    model, _, meta = load_pretrained(directory)
    spec = meta.get("tokenizer")
    if not isinstance(model, LanguageModel) or not isinstance(spec, dict):
        raise ValueError(f"{directory} holds no language model with a tokenizer (written by save_language_model)")
    if spec.get("type") == "char":
        tokenizer: Tokenizer = CharTokenizer(spec["chars"], unk_token=spec.get("unk_token"))
    elif spec.get("type") == "bpe":
        tokenizer = BPETokenizer.load(Path(directory) / spec["folder"])
    else:
        raise ValueError(f"{directory}/meta.json: unknown tokenizer type {spec.get('type')!r}")
    return model, tokenizer, meta


Encoder = BertModel | BertForPreTraining | BertForSequenceClassification


def save_encoder(
    directory: str | os.PathLike[str],
    model: Encoder,
    tokenizer: WordPieceTokenizer,
    meta: dict[str, Any] | None = None,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """:func:`save_pretrained` for a BERT model together with its WordPiece tokenizer.

    The vocabulary is written as BERT's ``vocab.txt`` (one token per line, line number = id) inside the same atomic
    replacement; the tokenizer's settings (lower-casing, accents, CJK splitting) go into ``meta.json``.

    Args:
        directory: Target folder.
        model: A [BertModel][llmdocs.models.bert.BertModel], ``BertForPreTraining`` or
            ``BertForSequenceClassification``.
        tokenizer: Its [WordPieceTokenizer][llmdocs.tokenizers.WordPieceTokenizer].
        meta: Extra JSON-friendly data (training command, scores).
        weights_dtype: As in :func:`save_pretrained` (``torch.float16`` halves the file).

    Returns:
        The folder written.

    Raises:
        TypeError: If ``model`` is not one of the three BERT classes, or ``tokenizer`` not a ``WordPieceTokenizer``.
        ValueError: If the tokenizer's ids are not 0..V-1 with V the model's ``vocab_size``.

    Examples:
        >>> import tempfile
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s"])
        >>> model = BertForPreTraining(BertConfig.tiny(tok.vocab_size))
        >>> path = save_encoder(tempfile.mkdtemp() + "/bert", model, tok, {"note": "untrained"})
        >>> loaded, loaded_tok, meta = load_encoder(path)
        >>> type(loaded).__name__, loaded_tok.tokenize("The cats"), meta["note"]
        ('BertForPreTraining', ['the', 'cat', '##s'], 'untrained')
    """
    if not isinstance(model, Encoder):
        raise TypeError(
            "model must be a BertModel, BertForPreTraining or BertForSequenceClassification, "
            f"got {type(model).__name__}"
        )
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer, got {type(tokenizer).__name__}")
    vocab_size = model.config.vocab_size
    if sorted(tokenizer.ids_to_tokens) != list(range(vocab_size)):
        raise ValueError(f"the tokenizer's ids must be 0..{vocab_size - 1} (the model's vocab_size={vocab_size})")
    spec = {
        "type": "wordpiece",
        "vocab_file": "vocab.txt",
        "do_lower_case": tokenizer.do_lower_case,
        "strip_accents": tokenizer.strip_accents,
        "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
        "max_input_chars_per_word": tokenizer.max_input_chars_per_word,
    }
    lines = "".join(tokenizer.ids_to_tokens[i] + "\n" for i in range(vocab_size))

    def write_vocab(tmp: Path) -> None:
        (tmp / spec["vocab_file"]).write_text(lines, encoding="utf-8")

    meta = {**(meta or {}), "tokenizer": spec}
    return save_pretrained(directory, model, model.config, meta, write_vocab, weights_dtype=weights_dtype)


def load_encoder(directory: str | os.PathLike[str]) -> tuple[Encoder, WordPieceTokenizer, dict[str, Any]]:
    """The BERT model (eval mode, CPU), its WordPiece tokenizer and metadata, from a folder of :func:`save_encoder`.

    Args:
        directory: The folder.

    Returns:
        ``(model, tokenizer, meta)``.

    Raises:
        FileNotFoundError: If the folder has no ``config.json``, no ``model.safetensors`` or no vocabulary file.
        ValueError: If the folder holds another kind of model (a GPT, say), no WordPiece tokenizer, or a damaged
            file (as :func:`load_pretrained`; a vocabulary that is not UTF-8 text, lacks the special tokens or
            whose size differs from the model's). The message names the file.
    """
    directory = Path(directory)
    kind = _read_saved_config(directory)["model"]
    encoders = [cls.__name__ for cls in get_args(Encoder)]
    if kind not in encoders:
        raise ValueError(
            f"{directory} holds a {kind}, not a BERT ({', '.join(encoders)}): it holds no BERT model with a WordPiece "
            "tokenizer (written by save_encoder); load it with load_pretrained"
        )
    model, _, meta = load_pretrained(directory)
    spec = meta.get("tokenizer")
    if not isinstance(model, Encoder) or not isinstance(spec, dict) or spec.get("type") != "wordpiece":
        raise ValueError(f"{directory} holds no BERT model with a WordPiece tokenizer (written by save_encoder)")
    if not isinstance(spec.get("vocab_file"), str):
        raise ValueError(f"{directory / 'meta.json'}: its 'tokenizer' lacks 'vocab_file', the vocabulary's file name")
    settings = {k: spec[k] for k in ("do_lower_case", "strip_accents", "tokenize_chinese_chars") if k in spec}
    if "max_input_chars_per_word" in spec:
        settings["max_input_chars_per_word"] = spec["max_input_chars_per_word"]
    vocab_file = directory / spec["vocab_file"]
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} is missing: the model's vocabulary (one token per line, save_encoder)")
    try:
        tokenizer = WordPieceTokenizer.from_vocab_file(vocab_file, **settings)
    except UnicodeDecodeError as error:
        raise ValueError(f"{vocab_file} is not UTF-8 text ({error}): a damaged vocabulary file") from error
    except (TypeError, ValueError) as error:
        raise ValueError(f"{vocab_file}: {error}") from error
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"{directory}: {spec['vocab_file']} has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{model.config.vocab_size} (a damaged or replaced vocabulary file)"
        )
    return model, tokenizer, meta
