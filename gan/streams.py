"""Named random streams: every random number of a run from `config.seed`, one stream per use.

A stream is `fold_in(key, stream_id(name))`, with a stable id of its name (CRC-32, the
same in every process and Python version, unlike `hash`), so adding a stream never moves
the others. Run-level streams fold into the seed's key; per-step streams into the
step's key, `fold_in(state.key, step)`, so a resumed run draws what an uninterrupted one
draws. Data order is numpy's, seeded by (seed, epoch): `gan.data.epoch_permutation`.
"""

import zlib

import jax

Array = jax.Array

# The run's streams: 'init' (parameters), 'train' (the base of the per-step keys, kept in
# the state), 'samples' (fixed noise and labels of the sample grids), 'eval' (FID/KID
# samples), 'standing' (the latents and labels of G's standing statistics, gan.sampling).
RUN_STREAMS = ('init', 'train', 'samples', 'eval', 'standing')


def stream_id(name: str) -> int:
  """A stable 31-bit id of `name`."""
  return zlib.crc32(name.encode()) & 0x7FFFFFFF


def named(key: Array, name: str) -> Array:
  """The stream `name` of `key`."""
  return jax.random.fold_in(key, stream_id(name))


def run_keys(seed: int) -> dict[str, Array]:
  """The run's independent keys by name (`RUN_STREAMS`), all from `seed`."""
  root = jax.random.PRNGKey(seed)
  return {name: named(root, name) for name in RUN_STREAMS}


def step_key(base: Array, step: Array | int) -> Array:
  """The key of train step `step`: the per-step streams are `named(step_key, name)`."""
  return jax.random.fold_in(base, step)
