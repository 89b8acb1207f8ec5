"""llmdocs: an executable course on large language models.

Every module is a from-scratch, shape-commented PyTorch implementation of one concept from the course, tested
against its reference implementation (``torch.nn``, ``transformers``, ``peft``).
"""

__version__ = "0.1.0"
