"""Model families by name, and the contract every family's networks meet.

A family is one module here that registers a builder:

  @models.register('dcgan', validate=validate_block)
  def build(block, spec): ... return generator, discriminator

`block` is the family's own config block, `config.model.<name>`, and nothing else of the
config; `spec` (`ModelSpec`) says what the data and the run fix: image shape, class count,
latent size, whether the model is conditional, the compute dtype. The two Flax modules
returned must meet the contract:

  G.apply(variables, z, labels, train=...) -> images [N, H, W, C] float32 in [-1, 1]
  D.apply(variables, images, labels, train=...) -> logits [N] float32

`z` is [N, latent_dim]; `labels` is None for an unconditional model, int32 [N] in
[0, num_classes) for a conditional one. BatchNorm statistics live in the `batch_stats`
collection, spectral norm's vectors in `spectral_norm` (`STATE_COLLECTIONS`; both updated
in train mode only), dropout draws from the `dropout` rng stream. A conditional D with
`model.class_head='acgan'` also sows class logits [N, classes] as
`intermediates/class_logits` (`gan.models.conditioning.class_term`). Only `gan.networks`
calls them.
"""

from gan.models import dcgan, resnet, sngan_cnn  # noqa: F401  (the built-in families register on import)
from gan.models.registry import (BATCH_STATS, CLASS_HEADS, CLASS_LOGITS, FAMILIES, INTERMEDIATES,
                                 STATE_COLLECTIONS, Family, ModelSpec, build_models,
                                 family_block, problems, register, spec_of)

__all__ = ['BATCH_STATS', 'CLASS_HEADS', 'CLASS_LOGITS', 'FAMILIES', 'INTERMEDIATES',
           'STATE_COLLECTIONS',
           'Family', 'ModelSpec', 'build_models',
           'family_block', 'problems', 'register', 'spec_of']
