r"""Layer-by-layer summary of a config's networks, as Keras' `model.summary()` prints it.

  python -m gan.summary --config configs/recap.py

"Param #" counts a layer's trainable parameters plus its BatchNorm running statistics,
which Keras counts as non-trainable parameters; the totals split the two.
"""

from typing import NamedTuple

import functools

import flax.linen as nn
import jax
import ml_collections
from absl import app, logging
from ml_collections import config_flags

from gan.networks import Networks


class Layer(NamedTuple):
  name: str
  kind: str
  output_shape: tuple
  trainable: int
  non_trainable: int


def _count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


def layers_of(module: nn.Module, *inputs, **kwargs) -> list[Layer]:
  """The direct sub-modules of `module` in call order, with output shapes and counts.

  Shapes only: runs `init` under `jax.eval_shape`, so no parameters are materialised.
  """
  calls = []

  def record(next_fun, args, call_kwargs, context):
    outputs = next_fun(*args, **call_kwargs)
    # Each top-level module once: nn.SpectralNorm calls the layer it wraps twice.
    if (context.method_name == '__call__' and len(context.module.path) == 1 and
        context.module.path[0] not in {name for name, _, _ in calls}):
      calls.append((context.module.path[0], type(context.module).__name__, outputs.shape))
    return outputs

  with nn.intercept_methods(record):
    variables = jax.eval_shape(functools.partial(module.init, **kwargs),
                               jax.random.PRNGKey(0), *inputs)
  params, stats = variables.get('params', {}), variables.get('batch_stats', {})
  return [Layer(name, kind, shape, _count(params.get(name, {})), _count(stats.get(name, {})))
          for name, kind, shape in calls]


def format_table(title: str, layers: list[Layer]) -> str:
  header = f'{"Layer (type)":<50}{"Output shape":<24}{"Param #":>12}'
  rule = '=' * len(header)
  lines = [title, rule, header, rule]
  for layer in layers:
    shape = '(None, ' + ', '.join(str(d) for d in layer.output_shape[1:]) + ')'
    lines.append(f'{layer.name + " (" + layer.kind + ")":<50}{shape:<24}'
                 f'{layer.trainable + layer.non_trainable:>12,}')
  trainable = sum(layer.trainable for layer in layers)
  non_trainable = sum(layer.non_trainable for layer in layers)
  lines += [rule, f'Total params: {total_parameters(layers):,}',
            f'Trainable params: {trainable:,}', f'Non-trainable params: {non_trainable:,}', '']
  return '\n'.join(lines)


def network_layers(config: ml_collections.ConfigDict) -> tuple[list[Layer], list[Layer]]:
  """(G's layers, D's layers) for `config`."""
  networks = Networks(config)
  z, labels, images = networks.example_inputs(1)
  return (layers_of(networks.generator, z, labels, train=False),
          layers_of(networks.discriminator, images, labels, train=False))


def total_parameters(layers: list[Layer]) -> int:
  """Trainable parameters plus BatchNorm statistics, as Keras' "Total params"."""
  return sum(layer.trainable + layer.non_trainable for layer in layers)


def summarize(config: ml_collections.ConfigDict) -> str:
  """Both networks' tables for `config`."""
  g_layers, d_layers = network_layers(config)
  return '\n'.join([format_table(f'Generator ({config.model.name})', g_layers),
                    format_table(f'Discriminator ({config.model.name})', d_layers)])


_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/recap.py.')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  print(summarize(_CONFIG.value))


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  app.run(main)
