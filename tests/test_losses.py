"""Losses and accuracies: exact values on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np

from gan import losses
from gan.losses import hinge
from gan.losses import non_saturating as ns


def _bce(p, y):
  return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_bce_matches_the_formula():
  logits = jnp.array([-2.0, 0.0, 0.5, 3.0])
  probs = 1 / (1 + np.exp(-np.asarray(logits)))
  np.testing.assert_allclose(ns.bce_with_logits(logits, 1.0), _bce(probs, 1).mean(), rtol=1e-6)
  np.testing.assert_allclose(ns.bce_with_logits(logits, 0.0), _bce(probs, 0).mean(), rtol=1e-6)


def test_bce_is_finite_where_sigmoid_saturates():
  assert np.isfinite(ns.bce_with_logits(jnp.array([-200.0]), 1.0))
  np.testing.assert_allclose(ns.bce_with_logits(jnp.array([-200.0]), 1.0), 200.0, rtol=1e-6)


def test_gan_losses():
  real, fake = jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5])
  np.testing.assert_allclose(ns.g_loss(fake),
                             ns.bce_with_logits(fake, 1.0))
  np.testing.assert_allclose(ns.d_loss(real, fake),
                             ns.bce_with_logits(real, 1.0) + ns.bce_with_logits(fake, 0.0))
  # At D's chance point (logit 0) the D loss is 2 log 2, the value curves start near.
  np.testing.assert_allclose(ns.d_loss(jnp.zeros(3), jnp.zeros(3)),
                             2 * np.log(2), rtol=1e-6)


def test_accuracy_thresholds_probability_not_logit():
  """Logit 0.3 is probability 0.57: "real". The seed's `logit > 0.5` called it fake."""
  logits = jnp.array([0.3, 0.3, -0.3, 2.0])
  assert float(losses.accuracy_real(logits)) == 0.75
  assert float(losses.accuracy_fake(logits)) == 0.25
  assert float(losses.accuracy_real(jnp.array([0.3]))) != float(jnp.mean(jnp.array([0.3]) > 0.5))


def test_losses_are_found_by_name():
  assert losses.get('non_saturating').g_loss is ns.g_loss
  with np.testing.assert_raises_regex(ValueError, "Unknown loss 'hinge2'; use one of"):
    losses.get('hinge2')


def test_hinge_loss_on_known_logits():
  real, fake = jnp.array([2.0, 0.5, -1.0]), jnp.array([-3.0, -0.5, 1.0])
  # D: relu(1 - real) = (0, 0.5, 2), relu(1 + fake) = (0, 0.5, 2): means 5/6 each.
  np.testing.assert_allclose(hinge.d_loss(real, fake), 5 / 3, rtol=1e-6)
  np.testing.assert_allclose(hinge.g_loss(fake), 2.5 / 3, rtol=1e-6)
  # Past the margins D's loss is flat: no gradient from confidently classified images.
  grads = jax.grad(hinge.d_loss, argnums=(0, 1))(jnp.array([2.0, 0.5]), jnp.array([-3.0, 0.0]))
  np.testing.assert_allclose(grads[0], [0.0, -0.5])
  np.testing.assert_allclose(grads[1], [0.0, 0.5])
  assert losses.get('hinge').d_loss is hinge.d_loss
