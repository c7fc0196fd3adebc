r"""Trains a GAN on CIFAR-10.

  python train.py --config configs/recap.py --workdir runs/recap
  python train.py --config configs/recap.py:smoke --workdir /tmp/smoke
  python train.py --config configs/recap.py --config.train.num_epochs=20 --workdir runs/r20

Rerunning the same command resumes from the latest checkpoint in --workdir.

Several hosts (or processes) train one run together when each runs the same command, with
checkpoints in a folder they all see (--config.checkpoint.directory=gs://..., or a workdir
on a shared disk; process 0 alone writes the workdir's other files), plus: --multihost on
a Cloud TPU pod slice or under SLURM / Open MPI (JAX finds the cluster), or else
  --coordinator_address=host0:1234 --num_processes=N --process_id=i   (i = 0 .. N-1).
"""

from gan import cpu_defaults

# Before JAX starts its backends and before the imports below start threads: XLA:CPU
# flags, and each step's temporaries kept in the heap instead of page-faulted in afresh
# (docs/performance.md).
cpu_defaults.apply_xla_flags()
cpu_defaults.tune_malloc()

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan import distributed, loop  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/recap.py[:smoke].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, metrics, pictures.')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Join the cluster JAX detects (TPU pod '
                                'slice, SLURM, Open MPI): one process per host.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', '', 'host:port of process 0, for a '
                                   'multi-process run without a detectable cluster.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Processes of the run (with '
                                      '--coordinator_address).')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0 .. num_processes - 1.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                         auto=_MULTIHOST.value)
  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
