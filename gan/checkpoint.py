"""Orbax checkpoints of the whole GANState (G, D, both optimizer states, step, key).

Resume order: the latest checkpoint in `<workdir>/checkpoints` wins; with none, the run
starts from `create_state(config)`. Saves are synchronous, so a save that returned is
complete on disk (a SIGTERM handler can save and exit); orbax writes to a temporary folder
and renames it, so an interrupted save never leaves a half checkpoint that looks whole.
"""

import signal
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from gan.state import GANState


class Checkpointer:
  """Saves and restores GANStates under `directory`, keeping the `max_to_keep` newest."""

  def __init__(self, directory: str | Path, max_to_keep: int):
    self._manager = ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: GANState) -> int:
    """Saves `state` under its step (a no-op if that step is already saved)."""
    step = int(jax.device_get(state.step))
    if step not in self._manager.all_steps():
      self._manager.save(step, args=ocp.args.StandardSave(state))
      self._manager.wait_until_finished()
    return step

  def restore_latest(self, template: GANState) -> GANState | None:
    """The newest saved state, laid out (shapes, dtypes, shardings) like `template`."""
    step = self._manager.latest_step()
    if step is None:
      return None
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()


class StopRequest:
  """Turns SIGTERM into a flag the loop checks between steps (it then saves and exits).

  Ctrl-C arrives as KeyboardInterrupt, which the loop handles the same way.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: signals cannot be caught here.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False
