"""Spectral normalisation of a discriminator [Miyato et al. 2018].

``spectral_norm_`` registers ``torch.nn.utils.parametrizations.spectral_norm`` on every
convolution and linear layer of a module, in place. What that changes, checked in
``tests/test_gan_modern.py``:

* parameters: none added. Each layer's weight becomes ``parametrizations.weight.original``
  (the same shape), so ``effgen.budget.count_params`` counts the network exactly as before;
* buffers: the power-iteration vectors ``parametrizations.weight.0._u`` and ``._v`` (in the
  state dict and the checkpoint, not in the parameter count);
* every forward pass in training mode runs one power iteration, updating ``_u``/``_v`` in
  place under ``no_grad``; evaluation mode reuses the stored vectors.

In ``effgen.gan.trainer`` the discriminator stays in training mode during the generator step
(with its weights frozen by ``requires_grad_(False)``), so each training step runs one power
iteration per discriminator call: real, fake, and fake again for G. That is what the
reference SNGAN and BigGAN code do; the extra iterations only refine the estimate of the
largest singular value. Freezing the weights does not stop the iteration (the vectors are
buffers), and no gradient reaches D's weights in the G step.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NORMALISED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def spectral_norm_(module: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution and linear layer of ``module`` in place; returns it.

    Initialise the weights first: afterwards ``layer.weight`` is computed from
    ``layer.parametrizations.weight.original`` on each access.
    """
    for layer in list(module.modules()):
        if isinstance(layer, NORMALISED_LAYERS):
            spectral_norm(layer)
    return module


def has_spectral_norm(module: nn.Module) -> bool:
    """True when at least one layer of ``module`` is spectrally normalised."""
    return any(name.endswith("parametrizations.weight.original") for name, _ in module.named_parameters())
