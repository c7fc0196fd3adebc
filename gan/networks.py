"""`Networks`: the one object through which G and D are called.

It draws latents and labels, generates, applies the augmentation policy to everything D
sees, and discriminates, for the train steps, the sample grids, evaluation, the summary
and the benchmarks alike, so a family's networks are called in one way everywhere
(the contract in `gan.models`).
"""

import jax
import jax.numpy as jnp
import ml_collections

from gan import augment, models, streams

Array = jax.Array

# PRNGs D's dropout masks can come from (`config.train.dropout_rng`).
DROPOUT_RNGS = ('threefry2x32', 'rbg')


def key_of(key: Array, impl: str) -> Array:
  """A key of PRNG `impl`, seeded from `key`'s bits (`key` itself for threefry2x32)."""
  if impl == 'threefry2x32':
    return key
  if impl == 'rbg':  # Its keys are 4 uint32 words.
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl='rbg')
  raise ValueError(f'Unknown dropout PRNG {impl!r}; use one of {DROPOUT_RNGS}.')


class Networks:
  """G and D of `config.model`, with what it takes to call them."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.generator, self.discriminator = models.build_models(config)
    self.spec = models.spec_of(config)
    self._dropout_rng = config.train.dropout_rng
    self._augment = augment.make_policy(config.augment.policy)

  @property
  def conditional(self) -> bool:
    return self.spec.conditional

  # Inputs.

  def latents(self, key: Array, num: int) -> Array:
    """z ~ N(0, I): [num, latent_dim] float32."""
    return jax.random.normal(key, (num, self.spec.latent_dim))

  def labels(self, key: Array, num: int) -> Array | None:
    """Uniform class labels int32 [num] for a conditional model, else None."""
    if not self.conditional:
      return None
    return jax.random.randint(key, (num,), 0, self.spec.num_classes, jnp.int32)

  def balanced_labels(self, num: int) -> Array | None:
    """Labels 0, 1, ..., C-1, 0, 1, ... int32 [num] (each class equally often, so that a
    metric compares like with like), or None for an unconditional model."""
    if not self.conditional:
      return None
    return jnp.arange(num, dtype=jnp.int32) % self.spec.num_classes

  def real_labels(self, labels: Array) -> Array | None:
    """The data's labels as D's input: passed on to a conditional model, else None."""
    return labels if self.conditional else None

  # The networks.

  def example_inputs(self, batch: int) -> tuple[Array, Array | None, Array]:
    """Zero (z, labels, images) of `batch` examples, the shapes G and D take."""
    return (jnp.zeros((batch, self.spec.latent_dim), jnp.float32),
            jnp.zeros((batch,), jnp.int32) if self.conditional else None,
            jnp.zeros((batch, *self.spec.image_shape), jnp.float32))

  def init(self, key: Array) -> tuple[dict, dict]:
    """(G's variables, D's variables): parameters and the state collections."""
    g_key, d_key = jax.random.split(key)
    # BatchNorm needs a batch axis; parameter shapes do not depend on its size.
    z, labels, images = self.example_inputs(2)
    return (self.generator.init(g_key, z, labels, train=False),
            self.discriminator.init(d_key, images, labels, train=False))

  def generate(self, variables: dict, z: Array, labels: Array | None) -> Array:
    """Inference mode (BatchNorm's running statistics): images [N, H, W, C] in [-1, 1]."""
    return self.generator.apply(variables, z, labels, train=False)

  def generate_train(self, params, collections: dict, z: Array,
                     labels: Array | None) -> tuple[Array, dict]:
    """Train mode: (images [N, H, W, C], G's updated state collections).

    `collections` maps each of `models.STATE_COLLECTIONS` to G's variables in it
    (`NetState.collections`).
    """
    images, updates = self.generator.apply({'params': params, **collections}, z, labels,
                                           train=True, mutable=list(models.STATE_COLLECTIONS))
    return images, _all_collections(updates)

  def discriminate_train(self, params, collections: dict, images: Array, labels: Array | None,
                         key: Array) -> tuple[Array, dict]:
    """Train mode, what D sees augmented: (logits [N], D's updated state collections).

    `key` is this call's own stream; the augmentation and the dropout masks draw from
    its named sub-streams.
    """
    logits, collections, _ = self.discriminate_train_with_classes(params, collections, images,
                                                                  labels, key)
    return logits, collections

  def discriminate_train_with_classes(self, params, collections: dict, images: Array,
                                      labels: Array | None, key: Array
                                      ) -> tuple[Array, dict, Array | None]:
    """`discriminate_train`, and the class logits [N, classes] of an AC-GAN D (None for
    any other D)."""
    if self._augment is not None:
      images = self._augment(streams.named(key, 'augment'), images)
    logits, updates = self.discriminator.apply(
        {'params': params, **collections}, images, labels, train=True,
        mutable=[*models.STATE_COLLECTIONS, models.INTERMEDIATES],
        rngs={'dropout': self.dropout_key(key)})
    sown = updates.get(models.INTERMEDIATES, {}).get(models.CLASS_LOGITS)
    return logits, _all_collections(updates), None if sown is None else sown[0]

  @property
  def auxiliary_classifier(self) -> bool:
    """Whether D has an AC-GAN head (its class logits train with the AC-GAN loss)."""
    return self.conditional and self.spec.class_head == 'acgan'

  def dropout_key(self, key: Array) -> Array:
    """The dropout key of a D call with stream `key`, of PRNG `train.dropout_rng`."""
    return key_of(streams.named(key, 'dropout'), self._dropout_rng)


def _all_collections(variables) -> dict:
  """Each state collection of `variables`, an empty dict for one a network does not keep
  (Flax leaves those out), so that a network's state keeps one structure."""
  return {name: variables.get(name, {}) for name in models.STATE_COLLECTIONS}
