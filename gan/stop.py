"""Stopping between calls of steps: SIGTERM (a scheduler, a preemption) and Ctrl-C become a
flag the training loop reads; it then saves a checkpoint and returns."""

import signal


class StopRequest:
  """Turns SIGTERM and Ctrl-C (SIGINT) into a flag the loop checks between steps; the loop
  then saves a checkpoint and returns. Stopping between steps, never inside one, means the
  state saved is always whole. A second Ctrl-C raises KeyboardInterrupt at once.
  """
  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested: str | None = None  # The name of the signal that asked to stop.
    self._previous = {}

  def __enter__(self):
    for signum in self._SIGNALS:
      try:
        self._previous[signum] = signal.signal(signum, self._handle)
      except ValueError:  # Not the main thread: signals cannot be caught here.
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    return False
