"""The device mesh and the shardings of state and batches: a leaf that the train loop,
the step factory and evaluation all import.

One 1-D mesh over every device; batches are split over its 'data' axis and everything
else is replicated. Under jit BatchNorm's statistics are over the whole global batch, so
a sharded step computes what a one-device step computes.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device); the batch is split over 'data'."""
  return Mesh(np.array(jax.devices() if devices is None else devices), ('data',))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh's 'data' axis."""
  return NamedSharding(mesh, P('data'))


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
  """[k, B, ...]: k steps' batches, each split over 'data'."""
  return NamedSharding(mesh, P(None, 'data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
