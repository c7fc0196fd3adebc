"""AC-GAN's classification loss (Odena et al. 2017): the term a conditional D with an
auxiliary classifier (`model.class_head='acgan'`) adds to both networks' losses.

D minimises the cross-entropy of its class logits on the real images' labels and on the
labels the fakes were drawn for; G minimises it on its fakes, so that its samples are
recognisable as the class asked for. The weight is `loss.class_weight`.
"""

import jax
import optax

Array = jax.Array


def class_loss(class_logits: Array, labels: Array) -> Array:
  """Mean softmax cross-entropy of class logits [N, classes] against labels int [N]."""
  return optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()
