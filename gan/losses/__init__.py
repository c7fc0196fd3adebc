"""GAN losses by name, and D's accuracies: small pure functions of D's logits.

A loss is one module here registering a `Loss` (`config.loss.name` selects it):

  @losses.register('hinge')
  def hinge() -> Loss: return Loss(g_loss=..., d_loss=...)

Logits, not probabilities, go in: a logit > 0 means D calls the image real, for every loss
(`accuracy_real`, `accuracy_fake`).
"""

from gan.losses import hinge, non_saturating, wasserstein  # noqa: F401  (built-ins register)
from gan.losses.registry import LOSSES, Loss, accuracy_fake, accuracy_real, get, register

__all__ = ['LOSSES', 'Loss', 'accuracy_fake', 'accuracy_real', 'get', 'register']
