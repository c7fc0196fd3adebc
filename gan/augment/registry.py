"""The registry of augmentations and policies (`gan.augment` re-exports it)."""

from collections.abc import Callable

import jax

Array = jax.Array
Augmentation = Callable[[Array, Array], Array]

AUGMENTATIONS: dict[str, Augmentation] = {}


def register(name: str):
  def add(fn: Augmentation) -> Augmentation:
    if name in AUGMENTATIONS:
      raise ValueError(f'Augmentation {name!r} is registered twice.')
    AUGMENTATIONS[name] = fn
    return fn

  return add


def parse_policy(policy: str) -> tuple[str, ...]:
  """'flip, x' -> ('flip', 'x'); '' -> () (no augmentation)."""
  return tuple(name.strip() for name in policy.split(',') if name.strip())


def problems(policy: str) -> list[str]:
  return [f'augment.policy names {name!r}, no known augmentation; use names from '
          f'{sorted(AUGMENTATIONS)}.' for name in parse_policy(policy)
          if name not in AUGMENTATIONS]


def make_policy(policy: str) -> Augmentation | None:
  """The composition of the policy's augmentations, in order, or None for an empty one.
  Each gets its own key, split from the one given."""
  names = parse_policy(policy)
  if not names:
    return None
  for problem in problems(policy):
    raise ValueError(problem)
  fns = [AUGMENTATIONS[name] for name in names]

  def apply(key: Array, images: Array) -> Array:
    for fn, fn_key in zip(fns, jax.random.split(key, len(fns))):
      images = fn(fn_key, images)
    return images

  return apply

