"""What every family's layers share: spectral normalisation of any layer."""

import flax.linen as nn
import jax

from gan.models import registry


def apply_layer(layer: nn.Module, x: jax.Array, spectral_norm: bool, train: bool) -> jax.Array:
  """`layer(x)`, its weights spectrally normalised when asked (Miyato et al. 2018, flax's
  `nn.SpectralNorm`: one power iteration a call in train mode only, its vectors in their
  own `spectral_norm` collection, so they are checkpointed with the state)."""
  if not spectral_norm:
    return layer(x)
  return nn.SpectralNorm(layer, collection_name=registry.SPECTRAL_NORM)(x, update_stats=train)
