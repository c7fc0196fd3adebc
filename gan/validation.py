"""Checks of a config before anything is loaded or compiled, each naming what to change."""

import ml_collections
import numpy as np

from gan import losses, models, steps

_ACTIVATIONS = ('relu', 'leaky_relu')


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError listing every problem found in `config`."""
  problems = []

  def need(condition: bool, message: str) -> None:
    if not condition:
      problems.append(message)

  need(config.model.name in models.DESIGNS,
       f'model.name={config.model.name!r} is no known design; use one of '
       f'{sorted(models.DESIGNS)}.')
  need(config.loss.name in losses.LOSSES,
       f'loss.name={config.loss.name!r} is unknown; use one of {sorted(losses.LOSSES)}.')
  for setting, layer in (('conv_transpose_impl', models.conv_transpose_layer),
                         ('strided_conv_impl', models.strided_conv_layer)):
    try:
      layer(config.model[setting])  # Looks the layer up only; builds nothing.
    except ValueError as error:
      problems.append(str(error))
  need(config.model.compute_dtype in ('float32', 'bfloat16'),
       f"model.compute_dtype={config.model.compute_dtype!r}: use 'float32' or 'bfloat16'.")
  need(config.model.latent_dim > 0, f'model.latent_dim={config.model.latent_dim} must be > 0.')
  need(0 < config.model.bn_momentum < 1,
       f'model.bn_momentum={config.model.bn_momentum} must be in (0, 1).')
  need(config.model.bn_epsilon > 0, f'model.bn_epsilon={config.model.bn_epsilon} must be > 0.')
  for net in ('G', 'D'):
    cfg = config.model[net]
    need(cfg.activation in _ACTIVATIONS,
         f'model.{net}.activation={cfg.activation!r}: use one of {_ACTIVATIONS}.')
    need(cfg.kernel_size > 0, f'model.{net}.kernel_size={cfg.kernel_size} must be > 0.')
  need(len(config.model.D.channels) == len(config.model.D.batch_norm),
       f'model.D.batch_norm has {len(config.model.D.batch_norm)} entries but model.D.channels '
       f'has {len(config.model.D.channels)}: give one per convolution.')
  need(0 <= config.model.D.dropout < 1, f'model.D.dropout={config.model.D.dropout} must be in [0, 1).')
  size = models.image_shape(config)
  need(size[:2] == (32, 32) and size[2] == 3,
       f'G makes {size} images but CIFAR-10 is (32, 32, 3): model.G.base_size * '
       f'2**(len(model.G.channels) + 1) must be 32 and model.G.out_channels 3.')

  for net in ('G', 'D'):
    optim = config.optim[net]
    need(optim.name == 'adam', f"optim.{net}.name={optim.name!r}: use 'adam'.")
    need(np.isfinite(optim.learning_rate) and optim.learning_rate > 0,
         f'optim.{net}.learning_rate={optim.learning_rate} must be a positive number.')
    need(0 <= optim.b1 < 1 and 0 <= optim.b2 < 1,
         f'optim.{net}.b1={optim.b1}, b2={optim.b2} must be in [0, 1).')
    need(optim.eps > 0, f'optim.{net}.eps={optim.eps} must be > 0.')

  train = config.train
  need(train.batch_size > 0, f'train.batch_size={train.batch_size} must be > 0.')
  need(train.dropout_rng in steps.DROPOUT_RNGS,
       f'train.dropout_rng={train.dropout_rng!r}: use one of {steps.DROPOUT_RNGS}.')
  need(train.batch_size % num_devices == 0,
       f'train.batch_size={train.batch_size} must be divisible by the {num_devices} devices '
       f'the batch is split over; use a multiple of {num_devices}.')
  need(train.num_epochs > 0, f'train.num_epochs={train.num_epochs} must be > 0.')
  need(train.update_rule in ('simultaneous', 'alternating'),
       f"train.update_rule={train.update_rule!r}: use 'simultaneous' or 'alternating'.")
  need(0 <= train.g_ema_decay < 1,
       f'train.g_ema_decay={train.g_ema_decay} must be in [0, 1) (0: no EMA of G).')
  need(train.log_every_steps > 0, f'train.log_every_steps={train.log_every_steps} must be > 0.')
  need(isinstance(train.steps_per_call, int) and train.steps_per_call > 0,
       f'train.steps_per_call={train.steps_per_call!r} must be a positive integer.')
  need(config.data.source in ('auto', 'tfds', 'binary', 'python'),
       f"data.source={config.data.source!r}: use 'auto', 'tfds', 'binary' or 'python'.")
  need(config.data.split in ('train', 'test'),
       f"data.split={config.data.split!r}: use 'train' or 'test'.")
  need(config.data.num_examples >= 0,
       f'data.num_examples={config.data.num_examples} must be >= 0 (0: all).')
  need(config.data.num_examples == 0 or config.data.num_examples >= train.batch_size,
       f'data.num_examples={config.data.num_examples} is smaller than one batch '
       f'({train.batch_size}).')
  need(config.eval.grid_size > 0, f'eval.grid_size={config.eval.grid_size} must be > 0.')
  need(config.eval.gif_fps > 0, f'eval.gif_fps={config.eval.gif_fps} must be > 0.')
  need(0 <= config.eval.curve_smoothing < 1,
       f'eval.curve_smoothing={config.eval.curve_smoothing} must be in [0, 1).')
  need(config.eval.every_epochs >= 0,
       f'eval.every_epochs={config.eval.every_epochs} must be >= 0 (0: no FID during training).')
  need(config.eval.num_samples > 1, f'eval.num_samples={config.eval.num_samples} must be > 1.')
  need(config.eval.reference_split in ('train', 'test'),
       f"eval.reference_split={config.eval.reference_split!r}: use 'train' or 'test'.")
  need(config.eval.batch_size > 0, f'eval.batch_size={config.eval.batch_size} must be > 0.')
  need(config.checkpoint.every_epochs > 0,
       f'checkpoint.every_epochs={config.checkpoint.every_epochs} must be > 0.')
  need(config.checkpoint.max_to_keep > 0,
       f'checkpoint.max_to_keep={config.checkpoint.max_to_keep} must be > 0.')
  if problems:
    raise ValueError('Invalid config:\n  - ' + '\n  - '.join(problems))
