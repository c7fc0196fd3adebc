"""Gradient penalties: exact on a D whose input gradient is known, and in a training run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import losses, regularizers
from gan.losses import wasserstein

IMAGES = jax.random.normal(jax.random.PRNGKey(0), (6, 4, 4, 3))
# A linear D, D(x) = <w, x>: its input gradient is w for every image.
W = jax.random.normal(jax.random.PRNGKey(1), (4 * 4 * 3,))
LINEAR_D = lambda images: images.reshape(images.shape[0], -1) @ W


def test_input_gradient_norms_of_a_linear_d():
  np.testing.assert_allclose(regularizers.input_gradient_norms(LINEAR_D, IMAGES),
                             np.full(6, np.linalg.norm(W)), rtol=1e-5)


def test_gradient_penalty_and_r1_on_known_gradients():
  norm = float(jnp.linalg.norm(W))
  fake = jax.random.normal(jax.random.PRNGKey(2), IMAGES.shape)
  np.testing.assert_allclose(regularizers.gradient_penalty(LINEAR_D, jax.random.PRNGKey(3),
                                                           IMAGES, fake), (norm - 1) ** 2, rtol=1e-5)
  np.testing.assert_allclose(regularizers.r1_penalty(LINEAR_D, IMAGES), norm ** 2 / 2, rtol=1e-5)
  # A quadratic D, D(x) = |x|^2 / 2: the gradient is x itself, so R1 is E|x|^2 / 2.
  quadratic = lambda images: 0.5 * jnp.sum(images.reshape(images.shape[0], -1) ** 2, axis=-1)
  np.testing.assert_allclose(regularizers.r1_penalty(quadratic, IMAGES),
                             float(jnp.mean(jnp.sum(IMAGES.reshape(6, -1) ** 2, -1))) / 2,
                             rtol=1e-5)


def test_interpolates_lie_between_real_and_fake():
  fake = IMAGES + 1.0
  mixed = regularizers.interpolates(jax.random.PRNGKey(4), IMAGES, fake)
  eps = np.asarray((fake - mixed)[:, 0, 0, 0])  # fake - mixed = eps * (fake - real) = eps.
  assert np.all((eps >= 0) & (eps <= 1)) and np.ptp(eps) > 0.1
  np.testing.assert_allclose(fake - mixed, np.broadcast_to(eps[:, None, None, None], IMAGES.shape),
                             atol=1e-6)


def test_the_penalty_is_differentiable_in_ds_parameters():
  def penalty(w):
    d = lambda images: images.reshape(images.shape[0], -1) @ w
    return regularizers.gradient_penalty(d, jax.random.PRNGKey(5), IMAGES, IMAGES + 1)
  grad = jax.grad(penalty)(W)
  norm = jnp.linalg.norm(W)
  np.testing.assert_allclose(grad, 2 * (norm - 1) * W / norm, rtol=1e-4)


def test_wasserstein_loss_on_known_critic_scores():
  real, fake = jnp.array([3.0, 1.0]), jnp.array([-1.0, 0.0])
  np.testing.assert_allclose(wasserstein.d_loss(real, fake), -0.5 - 2.0)
  np.testing.assert_allclose(wasserstein.g_loss(fake), 0.5)
  assert losses.get('wasserstein').g_loss is wasserstein.g_loss


@pytest.mark.parametrize('update_rule', ['simultaneous', 'alternating'])
def test_a_wgan_gp_run_with_r1_trains_and_logs_its_penalties(smoke_config, tmp_path, update_rule):
  from gan import loop
  smoke_config.loss.name = 'wasserstein'
  smoke_config.loss.gradient_penalty = 10.0
  smoke_config.loss.r1_gamma = 1.0
  smoke_config.train.update_rule = update_rule
  smoke_config.train.n_dis = 2 if update_rule == 'alternating' else 1
  smoke_config.train.num_epochs = 1
  loop.train_and_evaluate(smoke_config, tmp_path)
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert records and all(np.isfinite(r['D/gradient_penalty']) and r['D/gradient_penalty'] >= 0
                         and np.isfinite(r['D/r1']) and r['D/r1'] >= 0 for r in records)
