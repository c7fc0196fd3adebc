"""Multi-host JAX: joining the cluster, which process writes, and what all decide together.

One training run can span several processes (TPU pod hosts, GPU machines, or CPU
processes on one machine for tests). Every process runs the same loop on the same
global mesh and calls every jitted step; the rules that keep them in lockstep:

  - each process loads the dataset's arrays but copies to its devices only the rows of
    the global batch they hold (`parallel.gathered_batch`; with `data.on_device` the
    dataset sits on every device and each process passes its share of the indices);
  - only the main process (index 0) writes the run's files: config.json, metrics.jsonl,
    TensorBoard, grids, GIF, curves (`is_main`); orbax checkpoints are written by all
    of them together, to a directory they all see;
  - a decision that one host may reach alone (a SIGTERM, a preemption, a time budget) is
    shared (`any_process`) after the calls of steps the host waits for anyway (logging,
    periodic work), so all stop at the same step and save one checkpoint;
  - what each host finds on its own disk is agreed too: the latest checkpoint
    (`check_same`), a checkpoint that fails to restore, the cached FID statistics;
  - a failure of one process before training (process 0 cannot write the workdir) is
    shared too (`fail_together`), so the others stop at once with a pointer to it instead
    of waiting in a collective for a process that has gone. A process that dies later
    fails the others' next collective, and JAX's coordination service ends them within
    its heartbeat timeout; rerunning the command on every host resumes.

With one process every function here is the plain single-host behaviour, at no cost.
"""

import contextlib
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(coordinator_address: str = '', num_processes: int = 0, process_id: int = -1,
               auto: bool = False) -> None:
  """Joins the cluster before any JAX computation; a no-op for a one-process run.

  `auto`: JAX finds the cluster itself (a Cloud TPU pod slice, SLURM, Open MPI).
  Otherwise the three explicit values, the same address and count on every process.
  CPU processes talk over gloo (JAX's CPU collectives), so the path runs on any machine.
  """
  explicit = bool(coordinator_address) or num_processes > 1 or process_id >= 0
  if not (auto or explicit):
    return
  if explicit and not (coordinator_address and num_processes > 1 and
                       0 <= process_id < num_processes):
    raise ValueError(
        f'A multi-process run needs --coordinator_address=host:port, --num_processes >= 2 '
        f'and 0 <= --process_id < num_processes on every process; got '
        f'{coordinator_address!r}, {num_processes}, {process_id}.')
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if explicit:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return
  try:
    jax.distributed.initialize()
  except ValueError as error:  # JAX's own words: 'coordinator_address should be defined.'
    raise ValueError(
        f'--multihost: JAX found no cluster to join ({error}); it detects Cloud TPU pod '
        f'slices, SLURM and Open MPI. Elsewhere give --coordinator_address=host0:port, '
        f'--num_processes and --process_id on every process instead.') from error


def is_main() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0


def any_process(flags: Sequence[bool]) -> list[bool]:
  """Each flag, true on every process when it is true on any one: one collective for
  all of them, which every process must call at the same point of the loop."""
  flags = [bool(flag) for flag in flags]
  if jax.process_count() == 1:
    return flags
  gathered = multihost_utils.process_allgather(np.asarray(flags))  # [processes, flags]
  return [bool(flag) for flag in np.asarray(gathered).reshape(-1, len(flags)).any(axis=0)]


def check_same(value: int, what: str, remedy: str) -> None:
  """Raises on every process when the processes hold different integers `value` (what
  each sees of `what`), before they go different ways; a collective."""
  if jax.process_count() == 1:
    return
  values = np.asarray(multihost_utils.process_allgather(np.asarray([value], np.int32)))
  values = values.reshape(-1).tolist()
  if len(set(values)) > 1:
    raise RuntimeError(f'{describe()}the processes see different {what}: {values} (by '
                       f'process). {remedy}')


def from_main(value: float) -> float:
  """The main process's `value`, on every process (a collective)."""
  if jax.process_count() == 1:
    return value
  return float(multihost_utils.broadcast_one_to_all(np.asarray(value, np.float64)))


@contextlib.contextmanager
def fail_together(what: str):
  """Runs a block that may fail on some processes only (process 0's file writes); at its
  end every process learns whether any failed, and all raise: the one that failed its own
  error, the others a RuntimeError naming `what`. A collective: every process enters it."""
  error = None
  try:
    yield
  except Exception as raised:  # Re-raised below, once the others know.
    error = raised
  failed = any_process([error is not None])[0]
  if error is not None:
    raise error
  if failed:
    raise RuntimeError(f'{describe()}another process failed while {what}; its output says '
                       f'why. This one stops too.')


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name`."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def describe() -> str:
  """'[process i of n] ' in a multi-process run, '' otherwise: a prefix for the lines
  every process prints."""
  if jax.process_count() == 1:
    return ''
  return f'[process {jax.process_index()} of {jax.process_count()}] '

