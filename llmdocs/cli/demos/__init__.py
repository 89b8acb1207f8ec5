"""The chapter demos of `llmdocs tour`, one module per chapter, registered in course order.

Importing this package imports every module of `DEMO_MODULES`, whose `@register` decorators fill
[`llmdocs.cli.registry.REGISTRY`][llmdocs.cli.registry.REGISTRY]. The modules import torch and the rest of llmdocs
only inside their demo functions, so listing the demos (and `llmdocs --help`) stays instant. To add a chapter's
demo, see [`llmdocs.cli.registry`][llmdocs.cli.registry].
"""

from __future__ import annotations

import importlib

__all__ = ["DEMO_MODULES"]

DEMO_MODULES = (
    "word_embeddings",
    "attention",
    "tokenization",
    "gpt",
    "bert",
    "vit",
    "llama",
    "lora",
    "sft",
    "preferences",
)
"""Modules of this package that register a demo, in the order of the course's chapters."""

for _module in DEMO_MODULES:
    importlib.import_module(f"{__name__}.{_module}")
