"""Test helper shared by the GPT, generation and Hugging Face interop tests (imported, not collected)."""

import torch
from torch import nn


def perturb(model: nn.Module, scale: float = 3.0) -> nn.Module:
    """Random weights large enough that logits differ clearly between tokens (a wrong detail cannot hide)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * scale / p.shape[-1] ** 0.5)
    return model.eval()
