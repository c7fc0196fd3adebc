"""The registry of model families and what a builder is given (`gan.models` re-exports it)."""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gan import data


# The variable collections a family's networks may keep besides `params`, updated in train
# mode only: BatchNorm's running statistics, and spectral norm's power-iteration vectors
# (`u`) and last singular-value estimates (`sigma`) in a collection of their own.
BATCH_STATS = 'batch_stats'
SPECTRAL_NORM = 'spectral_norm'
STATE_COLLECTIONS = (BATCH_STATS, SPECTRAL_NORM)
# Where an AC-GAN D leaves its class logits: `intermediates/class_logits` (sown).
INTERMEDIATES = 'intermediates'
CLASS_LOGITS = 'class_logits'
CLASS_HEADS = ('projection', 'acgan')


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What a family's networks must fit, from the data and the run's settings."""
  image_shape: tuple[int, int, int]  # [H, W, C] of the data set's images.
  num_classes: int                   # Labels are in [0, num_classes).
  latent_dim: int                    # z is [N, latent_dim].
  conditional: bool                  # Whether G and D are given labels (else None).
  class_head: str                    # A conditional D's: 'projection' or 'acgan'.
  dtype: jnp.dtype                   # Compute dtype; parameters stay float32.


Builder = Callable[[ml_collections.ConfigDict, ModelSpec], tuple[nn.Module, nn.Module]]
Validator = Callable[[ml_collections.ConfigDict, ModelSpec], list[str]]


@dataclasses.dataclass(frozen=True)
class Family:
  build: Builder
  validate: Validator      # Problems with the family's block, each naming what to change.
  conditional: bool        # Whether its networks can take labels.


FAMILIES: dict[str, Family] = {}


def register(name: str, *, validate: Validator | None = None, conditional: bool = False):
  """Decorator registering a builder as family `name` (read from `config.model.name`)."""

  def add(build: Builder) -> Builder:
    if name in FAMILIES:
      raise ValueError(f'Model family {name!r} is registered twice.')
    FAMILIES[name] = Family(build, validate or (lambda block, spec: []), conditional)
    return build

  return add


def spec_of(config: ml_collections.ConfigDict) -> ModelSpec:
  dataset = data.dataset_spec(config.data)
  return ModelSpec(image_shape=dataset.image_shape, num_classes=dataset.num_classes,
                   latent_dim=config.model.latent_dim, conditional=config.model.conditional,
                   class_head=config.model.class_head,
                   dtype=jnp.dtype(config.model.compute_dtype))


def family_block(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.model.<name>`: the one block the family reads."""
  name = config.model.name
  if name not in config.model:
    raise ValueError(f'config.model.name={name!r} but the config has no config.model.{name} '
                     f'block holding its settings.')
  return config.model[name]


def problems(config: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with `config.model` for its family, each naming what to change."""
  name = config.model.name
  if name not in FAMILIES:
    return [f'model.name={name!r} is no known family; use one of {sorted(FAMILIES)}.']
  try:
    block = family_block(config)
  except ValueError as error:
    return [str(error)]
  family = FAMILIES[name]
  if config.model.conditional and not family.conditional:
    return [f'model.conditional=True but family {name!r} takes no labels.']
  if config.model.class_head not in CLASS_HEADS:
    return [f'model.class_head={config.model.class_head!r} is unknown; use one of '
            f'{list(CLASS_HEADS)}.']
  if config.model.class_head == 'acgan' and not config.model.conditional:
    return ["model.class_head='acgan' classifies the classes of a conditional model: set "
            "model.conditional=True (or class_head='projection')."]
  return [f'model.{name}.{problem}' for problem in family.validate(block, spec_of(config))]


def build_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) of `config.model.name`, built from its block."""
  name = config.model.name
  if name not in FAMILIES:
    raise ValueError(f'Unknown model family config.model.name={name!r}; '
                     f'known: {sorted(FAMILIES)}.')
  return FAMILIES[name].build(family_block(config), spec_of(config))

