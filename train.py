r"""Trains a GAN on CIFAR-10.

  python train.py --config configs/recap.py --workdir runs/recap
  python train.py --config configs/recap.py:smoke --workdir /tmp/smoke
  python train.py --config configs/recap.py --config.train.num_epochs=20 --workdir runs/r20

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

from gan import cpu_defaults

# Before JAX starts its backends and before the imports below start threads: XLA:CPU
# flags, and each step's temporaries kept in the heap instead of page-faulted in afresh
# (docs/performance.md).
cpu_defaults.apply_xla_flags()
cpu_defaults.tune_malloc()

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan import loop  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/recap.py[:smoke].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, metrics, pictures.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
