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


# How to install JAX for each accelerator (pyproject.toml's extras, pinned to one jax).
INSTALL_HINT = ("pip install -e '.[cuda13]' (NVIDIA, driver >= 580), '.[cuda12]' (driver "
                ">= 525) or '.[tpu]'")


def check_accelerator(required: bool) -> str:
  """The platform JAX computes on ('cpu', 'gpu', 'tpu'); raises when an accelerator is
  `required` and JAX has only the CPU (a CPU-only jaxlib, or a plugin it dropped), so a
  run meant for a GPU does not start a many-hour run on the host."""
  platform = jax.default_backend()
  if required and platform == 'cpu':
    raise RuntimeError(
        f'train.require_accelerator=True, but JAX {jax.__version__} sees only the CPU '
        f'({jax.device_count()} device(s)). Install its accelerator build: {INSTALL_HINT}; '
        f'or train on the CPU with --config.train.require_accelerator=False.')
  return platform


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh's 'data' axis."""
  return NamedSharding(mesh, P('data'))


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
  """[k, B, ...]: k steps' batches, each split over 'data'."""
  return NamedSharding(mesh, P(None, 'data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A host array that every process holds alike, as one global array laid out by
  `sharding`: each process copies only the shards of its own devices."""
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def gathered_batch(source: np.ndarray, indices: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """`source[indices]` as a global array laid out by `sharding` (over the leading
  `indices.ndim` axes): each process gathers only the rows of its own devices, so a host
  of a multi-host run reads its share of the batch and no more."""
  shape = indices.shape + source.shape[1:]
  return jax.make_array_from_callback(
      shape, sharding, lambda index: source[indices[index[:indices.ndim]]])


class OverMesh:
  """`fn(variables, *batches)` jitted with each batch split over every device of the mesh
  (all hosts' devices in a multi-host run) and its result replicated, returned as numpy on
  every process: evaluation's forward passes (G's samples, Inception features, the
  classifier's logits) sharded over all devices. The batches are host arrays, alike on
  every process (None passes through), whose length is a multiple of `multiple`."""

  def __init__(self, fn, mesh: Mesh | None = None):
    self.mesh = make_mesh() if mesh is None else mesh
    self.multiple = self.mesh.size
    self._fn = jax.jit(fn, out_shardings=replicated(self.mesh))

  def batch_size(self, wanted: int) -> int:
    """`wanted` rounded up to a multiple of the device count."""
    return -(-wanted // self.multiple) * self.multiple

  def put(self, variables):
    """`variables` (host or device arrays) replicated on every device of the mesh."""
    return jax.device_put(variables, replicated(self.mesh))

  def __call__(self, variables, *batches):
    if any(b is not None and len(b) % self.multiple for b in batches):
      raise ValueError(f'Batches of {[None if b is None else len(b) for b in batches]} '
                       f'do not split over {self.multiple} devices.')
    sharded = [None if b is None else global_batch(np.asarray(b), batch_sharding(self.mesh))
               for b in batches]
    return jax.tree_util.tree_map(np.asarray, self._fn(variables, *sharded))
