"""The Keras-style summary reports the seed's exact totals, layer by layer."""

import pytest

from configs import baseline, recap
from gan import summary


@pytest.mark.parametrize('get_config,g_total,g_trainable,d_total,d_trainable', [
    (baseline.get_config, 1_455_552, 1_446_976, 217_985, 217_985),
    (recap.get_config, 2_894_720, 2_885_760, 218_497, 218_241),
])
def test_summary_totals(get_config, g_total, g_trainable, d_total, d_trainable):
  text = summary.summarize(get_config())
  generator, discriminator = text.split('Discriminator')
  assert f'Total params: {g_total:,}' in generator
  assert f'Trainable params: {g_trainable:,}' in generator
  assert f'Total params: {d_total:,}' in discriminator
  assert f'Trainable params: {d_trainable:,}' in discriminator
  assert '(None, 32, 32, 3)' in generator and '(None, 4096)' in generator
  assert '(None, 8, 8, 128)' in discriminator


def test_layers_in_call_order_with_bn_statistics_as_non_trainable():
  from gan import models
  generator, _ = models.build_models(recap.get_config())
  import jax.numpy as jnp
  layers = summary.layers_of(generator, jnp.zeros((1, 100)), None, train=False)
  assert [l.kind for l in layers] == ['Dense', 'BatchNorm', 'SubPixelConvTranspose', 'BatchNorm',
                                      'SubPixelConvTranspose', 'BatchNorm', 'SubPixelConvTranspose']
  assert (layers[1].trainable, layers[1].non_trainable) == (8192, 8192)
  assert layers[2].output_shape == (1, 8, 8, 256)


def test_total_parameters_of_each_network():
  g_layers, d_layers = summary.network_layers(recap.get_config())
  assert (summary.total_parameters(g_layers), summary.total_parameters(d_layers)) == (2_894_720, 218_497)
