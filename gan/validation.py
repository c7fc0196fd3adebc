"""Checks of a config before anything is loaded or compiled, each naming what to change.

Each group asks the module that owns its options: the model family checks its own block
(`gan.models`), the optimizers theirs (`gan.optim`), and so on, so an option list is
kept in one place.
"""

import os

import ml_collections

from gan import augment, data, losses, metrics, models, networks, optim, sampling, schedule
from gan import steps, updates
from gan.metrics import METRICS


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError listing every problem found in `config`."""
  problems = []

  def need(condition: bool, message: str) -> None:
    if not condition:
      problems.append(message)

  need(config.data.dataset in data.DATASETS,
       f'data.dataset={config.data.dataset!r} is unknown; use one of {sorted(data.DATASETS)}.')
  need(config.data.source in data.SOURCES,
       f'data.source={config.data.source!r}: use one of {data.SOURCES}.')
  need(config.data.split in data.SPLITS, f'data.split={config.data.split!r}: use one of {data.SPLITS}.')
  need(config.data.num_examples >= 0,
       f'data.num_examples={config.data.num_examples} must be >= 0 (0: all).')
  dtype_known = config.model.compute_dtype in ('float32', 'bfloat16')
  need(dtype_known,
       f"model.compute_dtype={config.model.compute_dtype!r}: use 'float32' or 'bfloat16'.")
  if config.data.dataset in data.DATASETS and dtype_known:
    problems += models.problems(config)  # It builds the family's spec from both.
  need(config.model.latent_dim > 0, f'model.latent_dim={config.model.latent_dim} must be > 0.')
  need(config.loss.name in losses.LOSSES,
       f'loss.name={config.loss.name!r} is unknown; use one of {sorted(losses.LOSSES)}.')
  for name in ('gradient_penalty', 'r1_gamma'):
    need(config.loss[name] >= 0, f'loss.{name}={config.loss[name]} must be >= 0 (0: none).')
  problems += augment.problems(config.augment.policy)
  for net in ('G', 'D'):
    problems += [f'optim.{net}.{problem}' for problem in optim.problems(config.optim[net])]

  train = config.train
  need(train.batch_size > 0, f'train.batch_size={train.batch_size} must be > 0.')
  need(train.g_batch_size >= 0, f'train.g_batch_size={train.g_batch_size} must be >= 0 '
       f'(0: train.batch_size).')
  for name in ('batch_size', 'g_batch_size'):
    need(train[name] % num_devices == 0,
         f'train.{name}={train[name]} must be divisible by the {num_devices} devices the '
         f'batch is split over; use a multiple of {num_devices}.')
  need(isinstance(train.n_dis, int) and train.n_dis > 0,
       f'train.n_dis={train.n_dis!r} must be a positive integer.')
  need(train.update_rule in steps.UPDATE_RULES,
       f'train.update_rule={train.update_rule!r}: use one of {sorted(steps.UPDATE_RULES)}.')
  if train.update_rule == 'simultaneous':
    need(train.n_dis == 1, f"train.n_dis={train.n_dis}: the 'simultaneous' rule makes one D "
         f"update a step; use update_rule='alternating' for more.")
    need(updates.g_batch_size(config) == train.batch_size,
         f"train.g_batch_size={train.g_batch_size}: the 'simultaneous' rule takes G's loss "
         f"from D's fake batch, so G's batch is train.batch_size; set 0 or use "
         f"update_rule='alternating'.")
  need(train.num_epochs > 0, f'train.num_epochs={train.num_epochs} must be > 0.')
  need(train.time_budget_minutes >= 0,
       f'train.time_budget_minutes={train.time_budget_minutes} must be >= 0 (0: none).')
  need(train.time_budget_clock in ('wall', 'cpu'),
       f"train.time_budget_clock={train.time_budget_clock!r} must be 'wall' or 'cpu'.")
  need(0 <= train.g_ema_decay < 1,
       f'train.g_ema_decay={train.g_ema_decay} must be in [0, 1) (0: no EMA of G).')
  need(train.g_ema_half_life_kimg >= 0,
       f'train.g_ema_half_life_kimg={train.g_ema_half_life_kimg} must be >= 0 (0: none).')
  need(not (train.g_ema_decay and train.g_ema_half_life_kimg),
       'train.g_ema_decay and train.g_ema_half_life_kimg are both set: give one (the other 0).')
  need(isinstance(train.g_ema_start_step, int) and train.g_ema_start_step >= 0,
       f'train.g_ema_start_step={train.g_ema_start_step!r} must be an integer >= 0 (0: the '
       f'ramped decay from the start).')
  need(train.dropout_rng in networks.DROPOUT_RNGS,
       f'train.dropout_rng={train.dropout_rng!r}: use one of {networks.DROPOUT_RNGS}.')
  need(train.log_every_steps > 0, f'train.log_every_steps={train.log_every_steps} must be > 0.')
  need(isinstance(train.steps_per_call, int) and train.steps_per_call > 0,
       f'train.steps_per_call={train.steps_per_call!r} must be a positive integer.')
  need(config.data.num_examples == 0 or config.data.num_examples >= schedule.images_per_step(config),
       f'data.num_examples={config.data.num_examples} is smaller than one step '
       f'({schedule.images_per_step(config)} images: train.n_dis * train.batch_size).')

  evaluation = config.eval
  for name in ('eval.samples_every', 'eval.every', 'checkpoint.every'):
    group, field = name.split('.')
    problems += schedule.problem(name, config[group][field])
  need(evaluation.grid_size > 0, f'eval.grid_size={evaluation.grid_size} must be > 0.')
  need(evaluation.g_statistics in sampling.STATISTICS,
       f'eval.g_statistics={evaluation.g_statistics!r}: use one of {list(sampling.STATISTICS)}.')
  need(isinstance(evaluation.standing_batches, int) and evaluation.standing_batches > 0,
       f'eval.standing_batches={evaluation.standing_batches!r} must be a positive integer.')
  need(isinstance(evaluation.standing_batch_size, int) and evaluation.standing_batch_size >= 0,
       f'eval.standing_batch_size={evaluation.standing_batch_size!r} must be an integer >= 0 '
       f'(0: train.batch_size).')
  need(evaluation.gif_fps > 0, f'eval.gif_fps={evaluation.gif_fps} must be > 0.')
  need(0 <= evaluation.curve_smoothing < 1,
       f'eval.curve_smoothing={evaluation.curve_smoothing} must be in [0, 1).')
  unknown = [name for name in evaluation.metrics if name not in METRICS]
  need(not unknown, f'eval.metrics names {unknown}, no known metric; use names from '
       f'{sorted(METRICS)}.')
  need(len(evaluation.metrics) > 0 or not evaluation.every,
       'eval.metrics is empty but eval.every schedules an evaluation.')
  need('per_class' not in evaluation.metrics or config.model.conditional,
       "eval.metrics names 'per_class', which scores the classes samples were asked for: "
       "it needs model.conditional=True (or drop it from eval.metrics).")
  need('inception_score' not in evaluation.metrics or bool(
      evaluation.inception_logits or os.environ.get(metrics.INCEPTION_LOGITS_ENV)),
       f"eval.metrics names 'inception_score', which needs the reference Inception's logits "
       f"layer: set eval.inception_logits (or ${metrics.INCEPTION_LOGITS_ENV}).")
  need(evaluation.num_samples > 1, f'eval.num_samples={evaluation.num_samples} must be > 1.')
  need(evaluation.reference_split in data.SPLITS,
       f'eval.reference_split={evaluation.reference_split!r}: use one of {data.SPLITS}.')
  need(evaluation.batch_size > 0, f'eval.batch_size={evaluation.batch_size} must be > 0.')
  need(config.checkpoint.max_to_keep > 0,
       f'checkpoint.max_to_keep={config.checkpoint.max_to_keep} must be > 0.')
  if problems:
    raise ValueError('Invalid config:\n  - ' + '\n  - '.join(problems))
