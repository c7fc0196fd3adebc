"""When periodic work falls due: periods such as '1 epoch', '500 kimg', '1000 steps'.

A period is '<number> <unit>' with the unit epoch(s), kimg (thousands of real images
shown to D) or step(s); '' means never. A run's clock turns each into train steps, so
`due(prev, step)` says whether a call of steps from `prev` to `step` reached a multiple
of the period.
"""

import dataclasses
import math
import re

import ml_collections

from gan import data

UNITS = ('epochs', 'kimg', 'steps')
_PATTERN = re.compile(r'^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]+)\s*$')
# Each unit by its name, and by its singular ('1 epoch').
_ALIASES = {**{unit: unit for unit in UNITS}, **{unit.rstrip('s'): unit for unit in UNITS}}


@dataclasses.dataclass(frozen=True)
class Period:
  amount: float
  unit: str  # One of UNITS.


def parse(text: str) -> Period | None:
  """'2 epochs' -> Period(2, 'epochs'); '' -> None. Raises ValueError naming the format."""
  if not text.strip():
    return None
  match = _PATTERN.match(text.lower())
  if not match or match.group(2) not in _ALIASES or float(match.group(1)) <= 0:
    raise ValueError(f"{text!r} is no period: write '<positive number> <unit>' with the unit "
                     f"one of {sorted(_ALIASES)} (e.g. '1 epoch', '500 kimg'), or '' for never.")
  return Period(float(match.group(1)), _ALIASES[match.group(2)])


def problem(name: str, text: str) -> list[str]:
  """[] when `text` is a period or '', else one message naming the setting `name`."""
  try:
    parse(text)
  except ValueError as error:
    return [f'{name}: {error}']
  return []


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Real images one train step shows D: `train.n_dis` batches of `train.batch_size`."""
  return config.train.n_dis * config.train.batch_size


def steps_per_epoch(config: ml_collections.ConfigDict, num_examples: int = 0) -> int:
  """Train steps in one pass over `num_examples` images (default: as many as the config's
  split holds, `data.num_examples` or the data set's split size); the last partial step
  is dropped."""
  num_examples = (num_examples or config.data.num_examples or
                  data.dataset_spec(config.data).split_sizes[config.data.split])
  return num_examples // images_per_step(config)


def total_steps(config: ml_collections.ConfigDict, num_examples: int = 0) -> int:
  return config.train.num_epochs * steps_per_epoch(config, num_examples)


@dataclasses.dataclass(frozen=True)
class Clock:
  """Converts periods into steps for a run of `steps_per_epoch` steps an epoch, each
  showing D `images_per_step` real images."""
  steps_per_epoch: int
  images_per_step: int

  def steps(self, period: Period) -> float:
    return period.amount * {'epochs': self.steps_per_epoch,
                            'kimg': 1000 / self.images_per_step, 'steps': 1}[period.unit]

  def due(self, period: Period | None, prev_step: int, step: int) -> bool:
    """Whether (prev_step, step] holds a multiple of `period` (never for None)."""
    if period is None:
      return False
    every = self.steps(period)
    # A hair of slack so that e.g. 0.1 kimg periods land on the step they mean.
    return math.floor(step / every + 1e-9) > math.floor(prev_step / every + 1e-9)

  def epoch(self, step: int) -> float:
    return step / self.steps_per_epoch

  def kimg(self, step: int) -> float:
    return step * self.images_per_step / 1000
