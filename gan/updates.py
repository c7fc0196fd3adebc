"""The pieces the update rules of `gan.steps` are made of: the draws of z and labels, G's
call, D's two calls (real, then fake), the losses with their penalties and AC-GAN's class
term, and the metrics of each update."""

import jax
import ml_collections
import optax

from gan import augment, data, losses, regularizers, streams
from gan.losses import auxiliary_classifier
from gan.networks import Networks
from gan.state import NetState

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]


def g_batch_size(config: ml_collections.ConfigDict) -> int:
  """G's samples per G update: `train.g_batch_size`, or D's batch when it is 0."""
  return config.train.g_batch_size or config.train.batch_size


class Updates:
  """The pieces the update rules are made of: draws, D's two calls, losses, metrics."""

  def __init__(self, config: ml_collections.ConfigDict, networks: Networks):
    self.nets = networks
    self.loss = losses.get(config.loss.name)
    self.gradient_penalty = config.loss.gradient_penalty
    self.r1_gamma = config.loss.r1_gamma
    self.n_dis = config.train.n_dis
    self.g_batch_size = g_batch_size(config)
    self.class_weight = config.loss.class_weight if networks.auxiliary_classifier else 0.0
    self.random_flip = config.data.random_flip

  def real_images(self, real: Batch, key: Array) -> Array:
    """The real batch as D's input: float images [B, H, W, C], each mirrored with
    probability 1/2 (stream 'mirror') under `data.random_flip`."""
    images = data.to_float(real['image'])
    if self.random_flip:
      images = augment.AUGMENTATIONS['flip'](streams.named(key, 'mirror'), images)
    return images

  def draw(self, key: Array, num: int) -> tuple[Array, Array | None]:
    """(z, labels) of `num` fakes from stream `key`."""
    return (self.nets.latents(streams.named(key, 'z'), num),
            self.nets.labels(streams.named(key, 'labels'), num))

  def generate(self, g: NetState, params, key: Array, num: int):
    """(fakes, their labels, G's updated state collections), drawn from `key`."""
    z, labels = self.draw(key, num)
    fake, stats = self.nets.generate_train(params, g.collections, z, labels)
    return fake, labels, stats

  def d_forward(self, d: NetState, params, real: Batch, fake: Array, fake_labels, key: Array):
    """Real then fake through D, its statistics updated in that order (as Keras does):
    (real logits, fake logits, D's state collections, (real, fake) class logits of an
    AC-GAN D or Nones)."""
    real_logits, stats, real_classes = self.nets.discriminate_train_with_classes(
        params, d.collections, self.real_images(real, key),
        self.nets.real_labels(real['label']), streams.named(key, 'real'))
    fake_logits, stats, fake_classes = self.nets.discriminate_train_with_classes(
        params, stats, fake, fake_labels, streams.named(key, 'fake'))
    return real_logits, fake_logits, stats, (real_classes, fake_classes)

  def g_objective(self, fake_logits: Array, fake_classes: Array | None, fake_labels) -> Array:
    """G's loss, with AC-GAN's classification term on its fakes when D has the head."""
    loss = self.loss.g_loss(fake_logits)
    if self.class_weight:
      loss = loss + self.class_weight * auxiliary_classifier.class_loss(fake_classes, fake_labels)
    return loss

  def d_objective(self, d: NetState, params, real: Batch, fake: Array, fake_labels, key: Array):
    """(D's loss with its penalties, (real logits, fake logits, D's state collections, the
    penalties by metric name, the fakes' class logits of an AC-GAN D or None))."""
    real_logits, fake_logits, stats, (real_classes, fake_classes) = self.d_forward(
        d, params, real, fake, fake_labels, key)
    loss, penalties = self.loss.d_loss(real_logits, fake_logits), {}
    if self.class_weight:
      penalties['D/class_loss'] = (
          auxiliary_classifier.class_loss(real_classes, real['label'])
          + auxiliary_classifier.class_loss(fake_classes, fake_labels))
      loss = loss + self.class_weight * penalties['D/class_loss']
    if self.gradient_penalty or self.r1_gamma:
      real_images, real_labels = self.real_images(real, key), self.nets.real_labels(real['label'])
      logits_of = lambda name: lambda images: self.nets.discriminate_train(
          params, stats, images, real_labels, streams.named(key, name))[0]
      if self.gradient_penalty:
        penalties['D/gradient_penalty'] = regularizers.gradient_penalty(
            logits_of('gradient_penalty'), streams.named(key, 'interpolates'), real_images, fake)
        loss = loss + self.gradient_penalty * penalties['D/gradient_penalty']
      if self.r1_gamma:
        penalties['D/r1'] = regularizers.r1_penalty(logits_of('r1'), real_images)
        loss = loss + self.r1_gamma * penalties['D/r1']
    return loss, (real_logits, fake_logits, stats, penalties, fake_classes)

  def d_metrics(self, d_loss, real_logits, fake_logits, d_grads) -> Metrics:
    return {'D/loss': d_loss, 'D/acc_real': losses.accuracy_real(real_logits),
            'D/acc_fake': losses.accuracy_fake(fake_logits),
            'D/grad_norm': optax.tree.norm(d_grads)}

  def g_metrics(self, g_loss, g_grads) -> Metrics:
    return {'G/loss': g_loss, 'G/grad_norm': optax.tree.norm(g_grads)}
