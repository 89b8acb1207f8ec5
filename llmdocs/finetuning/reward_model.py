"""A reward model: a language model whose vocabulary head is replaced by one scalar, read at the answer's last token.

InstructGPT's reward model (Ouyang et al., 2022, section 3.5) is the SFT model with its unembedding layer removed
and a linear layer to one number put in its place; the number at the last token of prompt + answer is the reward:

    h = RMSNorm(h_N)          (B, T, D)   the decoder's final hidden states (``Llama.hidden_states``)
    s = h w                   (B, T)      one score per position (w: (D,), ``score``)
    r(x, y) = s[b, last_b]    (B,)        at each row's last real token, which has read the whole answer

It is trained on preference pairs with the [Bradley-Terry loss][llmdocs.finetuning.bradley_terry]. The same
architecture read at *every* position is PPO's value model V(s_t) (InstructGPT initialises its value function from
the reward model): [RewardModel.token_scores][llmdocs.finetuning.reward_model.RewardModel.token_scores].

Hugging Face builds the same model as ``LlamaForSequenceClassification(num_labels=1)`` (a bias-free ``score``
layer on ``LlamaModel``'s normed last hidden state, read at the last token that is not padding), which TRL's
``RewardTrainer`` trains; our parameter is named ``score`` as theirs. The head starts at w ~ N(0, 1 / (D + 1)), the
initialisation of Ziegler et al. (2019, section 2.1 and their code ``lm-human-preferences``), so the initial rewards
have about the scale of one unit-variance feature.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section 3.5;
    Stiennon et al., "Learning to summarize from human feedback", NeurIPS 2020, section 3.4; Ziegler et al.,
    "Fine-Tuning Language Models from Human Preferences", 2019, section 2.1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from llmdocs.models.llama import Llama

__all__ = ["RewardModel", "last_token_index"]


def last_token_index(attention_mask: Tensor) -> Tensor:
    """The index of each row's last real token: (B, T) mask -> (B,) indices.

    Works for right padding (``1 1 1 0 0`` -> 2), left padding (``0 0 1 1 1`` -> 4) and no padding (T - 1), and for
    rows with holes (the last True counts).

    Args:
        attention_mask: bool or 0/1 integer (B, T), True / 1 at real tokens; every row needs at least one.

    Returns:
        Long tensor (B,).

    Raises:
        TypeError: If ``attention_mask`` is not a bool or integer tensor.
        ValueError: If it is not 2-D, holds values other than 0/1, or a row has no real token.

    Examples:
        >>> last_token_index(torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]]))
        tensor([2, 4])
    """
    if not isinstance(attention_mask, Tensor) or attention_mask.is_floating_point() or attention_mask.is_complex():
        got = attention_mask.dtype if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
        raise TypeError(f"attention_mask must be a bool or integer tensor (B, T), got {got}")
    if attention_mask.dim() != 2 or attention_mask.size(1) == 0:
        raise ValueError(f"attention_mask must be (B, T) with T >= 1, got shape {tuple(attention_mask.shape)}")
    if attention_mask.dtype != torch.bool:
        if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError("attention_mask must hold only 0 and 1")
        attention_mask = attention_mask.bool()
    empty = ~attention_mask.any(dim=1)  # (B,)
    if bool(empty.any()):
        raise ValueError(f"attention_mask has rows without a real token: {empty.nonzero().flatten().tolist()}")
    T = attention_mask.size(1)
    return T - 1 - attention_mask.flip(1).int().argmax(dim=1)  # (B,): the first True from the right


class RewardModel(nn.Module):
    """A decoder with a scalar head: r(x, y) = w . RMSNorm(h_N)[last token] (Ouyang et al., 2022, section 3.5).

    Args:
        backbone: the [Llama][llmdocs.models.llama.Llama] to read (its ``lm_head`` is not used; for an SFT model
            with LoRA adapters, the adapters stay and train).

    Attributes:
        backbone: the decoder.
        score: ``nn.Linear(D, 1, bias=False)``, the head, w ~ N(0, 1 / (D + 1)).

    Shape:
        ids (B, T), attention_mask (B, T) -> rewards (B,); ``token_scores``: -> (B, T).

    Raises:
        TypeError: If ``backbone`` is not a Llama.

    Examples:
        >>> import torch
        >>> from llmdocs.models.llama import LlamaConfig
        >>> _ = torch.manual_seed(0)
        >>> reward_model = RewardModel(Llama(LlamaConfig.tiny())).eval()
        >>> ids = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 8]])
        >>> mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
        >>> rewards = reward_model(ids, attention_mask=mask)
        >>> rewards.shape
        torch.Size([2])
        >>> from llmdocs.testing import assert_close
        >>> alone = reward_model.token_scores(ids[:1, :3])[:, -1]  # row 0 without its padding, its last token
        >>> assert_close(rewards[:1], alone, depth=2)
    """

    def __init__(self, backbone: Llama) -> None:
        super().__init__()
        if not isinstance(backbone, Llama):
            raise TypeError(f"backbone must be a llmdocs Llama, got {type(backbone).__name__}")
        self.backbone = backbone
        D = backbone.config.d_model
        weight = backbone.tok_embed.weight
        self.score = nn.Linear(D, 1, bias=False, device=weight.device, dtype=weight.dtype)  # w (1, D)
        nn.init.normal_(self.score.weight, std=1 / math.sqrt(D + 1))

    def token_scores(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The head's score at every position: (B, T) ids -> (B, T) scores (PPO's values V(s_t)).

        Args:
            ids: token ids (B, T).
            attention_mask: optional bool or integer (B, T), True / 1 at real tokens (left or right padding); scores
                at padding are computed but mean nothing.

        Returns:
            Scores (B, T) in the model's dtype.

        Raises:
            TypeError, ValueError: As [Llama.hidden_states][llmdocs.models.llama.Llama.hidden_states].
        """
        h = self.backbone.hidden_states(ids, attention_mask=attention_mask)  # (B, T, D)
        return self.score(h).squeeze(-1)  # (B, T)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The reward of each row: the score at its last real token, (B, T) -> (B,).

        Args:
            ids: token ids (B, T) of prompt + answer (the chat template's rendering, ending with the answer's end
                of turn).
            attention_mask: optional bool or integer (B, T), True / 1 at real tokens; None = no padding.

        Returns:
            Rewards (B,).

        Raises:
            TypeError, ValueError: As ``token_scores`` and
                [last_token_index][llmdocs.finetuning.reward_model.last_token_index].
        """
        if attention_mask is not None:
            last = last_token_index(attention_mask)  # (B,), checked before the forward pass
        scores = self.token_scores(ids, attention_mask)  # (B, T)
        if attention_mask is None:
            return scores[:, -1]  # (B,)
        return scores.gather(1, last.to(scores.device).unsqueeze(1)).squeeze(1)  # (B,)
