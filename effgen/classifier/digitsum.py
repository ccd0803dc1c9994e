"""AddNIST classifiers that know the task: three digits, one per channel, and their sum.

An AddNIST image holds three MNIST digits as its R, G and B channels, each normalised with
MNIST's mean 0.1307 and std 0.3081 (SPEC §4), and its label is their sum minus one. The
models here read each channel on its own with one small CNN shared by all three channels
(weight tying), so the same digit recogniser sees three times as many digit images per batch,
and a digit looks the same to it whichever channel carries it. This is the structure of
"MNIST addition" [Manhaeve et al. 2018] and, since the sum of three digits does not depend on
their order, of Deep Sets [Zaheer et al. 2017]: a shared encoder per element, then a
symmetric combination. Training still sees only the sum labels, as the paper's model does.

- :class:`DigitSumClassifier` (``model: digitsum``) maps every channel to a distribution over
  the digits 0-9 and combines the three by the *sum head* (:func:`sum_log_probs`): the
  distribution of the sum of three independent digits is the convolution of their three
  distributions, a distribution over the sums 0-27. The head has no parameters.
- :class:`DigitConcatClassifier` (``model: digitconcat``) is the comparison the issue asks for:
  the same shared CNN, but its three feature vectors are concatenated and a learned two-layer
  head maps them to the 20 sums. It must learn addition; the sum head is given it.

**The sum head's output.** AddNIST keeps only the sums 1..20 (labels 0..19). The head scores
those 20 sums and renormalises over them, so its output is ``log p(sum | sum in 1..20)``: the
log-likelihood of the data as it was sampled (no AddNIST image has a sum of 0 or above 20).
Its rows are normalised log-probabilities, which ``F.cross_entropy`` leaves unchanged (the
log-softmax of a normalised log-distribution is itself), so the training loop, label smoothing
and ``evaluate`` use it exactly like logits. The convolution is done in log space with an exact
``logsumexp`` per sum, so a confident digit network never underflows a sum's probability to 0
(which would give an infinite loss); see :func:`sum_log_probs`.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effgen.classifier.layers import make_activation
from effgen.classifier.models import NUM_CLASSES

N_DIGITS = 3  # digits per AddNIST image, one per channel
DIGIT_CLASSES = 10
MAX_SUM = N_DIGITS * (DIGIT_CLASSES - 1)  # 27
VALID_SUMS = range(1, NUM_CLASSES + 1)  # AddNIST keeps sums 1..20; label = sum - 1
DEFAULT_WIDTHS: tuple[int, int, int] = (16, 32, 64)


def conv_bn(in_channels: int, out_channels: int, activation: str) -> nn.Sequential:
    """3x3 convolution (same padding, no bias) + batch norm + activation: (N, C_in, H, W) -> (N, C_out, H, W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        make_activation(activation),
    )


class DigitNet(nn.Module):
    """The shared per-channel CNN: one digit (M, 1, 28, 28) -> features (M, widths[2]).

    A VGG-style stack in the spirit of the small MNIST networks that reach 99%+ on MNIST:
    two 3x3 convolutions per resolution, max-pooling between them. Shapes for widths
    (16, 32, 64) are in the comments.
    """

    def __init__(self, widths: tuple[int, int, int] = DEFAULT_WIDTHS, activation: str = "relu") -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            conv_bn(1, c1, activation),  # (M, 1, 28, 28) -> (M, 16, 28, 28)
            conv_bn(c1, c1, activation),  # (M, 16, 28, 28)
            nn.MaxPool2d(2),  # -> (M, 16, 14, 14)
            conv_bn(c1, c2, activation),  # -> (M, 32, 14, 14)
            conv_bn(c2, c2, activation),  # (M, 32, 14, 14)
            nn.MaxPool2d(2),  # -> (M, 32, 7, 7)
            conv_bn(c2, c3, activation),  # -> (M, 64, 7, 7)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # (M, 64, 7, 7) -> (M, 64, 1, 1)
        self.out_features = c3

    def forward(self, digits: Tensor) -> Tensor:
        return self.pool(self.features(digits)).flatten(1)  # (M, 64)


def split_channels(x: Tensor) -> Tensor:
    """(N, 3, 28, 28) AddNIST images -> (3N, 1, 28, 28) single digits, image-major (row 3i + k = channel k of image i)."""
    n, c, h, w = x.shape
    if c != N_DIGITS:
        raise ValueError(f"AddNIST images have {N_DIGITS} channels, got {c}")
    return x.reshape(n * c, 1, h, w)


@functools.cache
def _sum_index(device: torch.device) -> tuple[Tensor, Tensor]:
    """For each sum 0..27, the flat indices ``100 a + 10 b + c`` of the digit triples (a, b, c) adding up to it.

    Returns ``index`` (28, K) int64, padded with 0 where a sum has fewer than K = 75 triples, and
    ``valid`` (28, K) bool marking the real entries.
    """
    digits = torch.arange(DIGIT_CLASSES)
    a, b, c = torch.meshgrid(digits, digits, digits, indexing="ij")
    sums, flat = (a + b + c).reshape(-1), torch.arange(DIGIT_CLASSES ** N_DIGITS)
    groups = [flat[sums == s] for s in range(MAX_SUM + 1)]
    width = max(len(g) for g in groups)
    index = torch.zeros(MAX_SUM + 1, width, dtype=torch.long)
    valid = torch.zeros(MAX_SUM + 1, width, dtype=torch.bool)
    for s, group in enumerate(groups):
        index[s, :len(group)] = group
        valid[s, :len(group)] = True
    return index.to(device), valid.to(device)


def sum_log_probs(digit_log_probs: Tensor, renormalise: bool = True) -> Tensor:
    """The parameter-free sum head: three digit distributions -> the distribution of their sum.

    ``digit_log_probs`` (N, 3, 10) holds log p_k(d) for channel k. The digits are treated as
    independent, so ``p(s) = sum over a + b + c = s of p_1(a) p_2(b) p_3(c)``, the convolution
    of the three distributions. In log space: form all 1,000 joint log-probabilities
    ``log p_1(a) + log p_2(b) + log p_3(c)``, then take an exact ``logsumexp`` over the triples
    of each sum (a sum has 1 to 75 of them).

    Returns (N, 20) log-probabilities of the sums 1..20 (index = AddNIST label), renormalised
    over those 20 when ``renormalise`` (the default, see the module docstring); with
    ``renormalise=False`` the 20 entries are the unconditional log p(s) and sum to at most 1.
    The result is symmetric in the three channels and differentiable everywhere.
    """
    if digit_log_probs.ndim != 3 or digit_log_probs.shape[1:] != (N_DIGITS, DIGIT_CLASSES):
        raise ValueError(f"expected digit log-probabilities (N, 3, 10), got {tuple(digit_log_probs.shape)}")
    p1, p2, p3 = digit_log_probs.unbind(1)  # each (N, 10)
    joint = (p1[:, :, None, None] + p2[:, None, :, None] + p3[:, None, None, :]).flatten(1)  # (N, 1000)
    index, valid = _sum_index(digit_log_probs.device)
    per_sum = joint[:, index]  # (N, 28, 75): the triples of each sum, padded
    per_sum = per_sum.masked_fill(~valid, float("-inf"))
    all_sums = torch.logsumexp(per_sum, dim=-1)  # (N, 28): log p(s), s = 0..27
    scored = all_sums[:, VALID_SUMS.start:VALID_SUMS.stop]  # (N, 20): sums 1..20
    if renormalise:
        scored = scored - torch.logsumexp(scored, dim=1, keepdim=True)
    return scored


class DigitSumClassifier(nn.Module):
    """AddNIST image (N, 3, 28, 28) -> log-probabilities over the 20 digit sums (N, 20), via three digits.

    The shared :class:`DigitNet` reads every channel, a linear layer gives each 10 digit logits,
    and :func:`sum_log_probs` convolves the three digit distributions. :meth:`digit_logits` exposes
    the per-channel digit predictions (for measuring digit accuracy; never trained on digit labels).
    """

    def __init__(self, widths: tuple[int, int, int] = DEFAULT_WIDTHS, activation: str = "relu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.digits = DigitNet(widths, activation)  # shared by the three channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # (3N, 64)
        self.classify = nn.Linear(self.digits.out_features, DIGIT_CLASSES)  # (3N, 64) -> (3N, 10)

    def digit_logits(self, x: Tensor) -> Tensor:
        """(N, 3, 28, 28) -> (N, 3, 10): the digit logits of each channel."""
        features = self.digits(split_channels(x))  # (3N, 64)
        return self.classify(self.dropout(features)).view(x.shape[0], N_DIGITS, DIGIT_CLASSES)  # (N, 3, 10)

    def forward(self, x: Tensor) -> Tensor:
        digit_log_probs = F.log_softmax(self.digit_logits(x).float(), dim=-1)  # (N, 3, 10), fp32 even under autocast
        return sum_log_probs(digit_log_probs)  # (N, 20), normalised log-probabilities


class DigitConcatClassifier(nn.Module):
    """The learned-head comparison: shared DigitNet features of the 3 channels, concatenated -> MLP -> 20 logits."""

    def __init__(self, widths: tuple[int, int, int] = DEFAULT_WIDTHS, activation: str = "relu",
                 dropout: float = 0.0, hidden: int = 64) -> None:
        super().__init__()
        self.digits = DigitNet(widths, activation)  # shared by the three channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # (N, 192)
        self.head = nn.Sequential(
            nn.Linear(N_DIGITS * self.digits.out_features, hidden),  # (N, 192) -> (N, 64)
            make_activation(activation),  # (N, 64)
            nn.Linear(hidden, NUM_CLASSES),  # (N, 64) -> (N, 20)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = self.digits(split_channels(x)).view(x.shape[0], -1)  # (3N, 64) -> (N, 192), channel order kept
        return self.head(self.dropout(features))  # (N, 20) logits


@torch.no_grad()
def digit_predictions(model: DigitSumClassifier, x: Tensor, device: torch.device | str,
                      batch_size: int = 256) -> Tensor:
    """The shared digit network's argmax digit for every channel: (N, 3, 28, 28) -> int64 (N, 3), on the CPU."""
    from effgen.runtime import memory_format  # local: keeps this module's imports light

    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device).contiguous(memory_format=memory_format(device))
            out.append(model.digit_logits(xb).argmax(-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def digit_accuracy(predicted: Tensor, digits: Tensor) -> dict[str, float]:
    """Per-digit accuracy p (all 3N digits), per channel, and the share of images with all three digits right.

    ``digits`` (N, 3) are the true digits, used for evaluation only.
    """
    predicted, digits = torch.as_tensor(predicted), torch.as_tensor(digits)
    if predicted.shape != digits.shape or predicted.ndim != 2 or predicted.shape[1] != N_DIGITS:
        raise ValueError(f"predicted and true digits must both be (N, 3), got {tuple(predicted.shape)} "
                         f"and {tuple(digits.shape)}")
    right = (predicted == digits).double()
    return {"digit": float(right.mean()),
            **{f"channel_{k}": float(right[:, k].mean()) for k in range(N_DIGITS)},
            "all_three": float(right.all(dim=1).double().mean()), "n_images": len(digits)}
