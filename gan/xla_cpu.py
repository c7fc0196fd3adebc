"""XLA:CPU settings this project measured faster, put into XLA_FLAGS before JAX starts.

jaxlib 0.10's XLA:CPU hands convolutions, dots, reductions and element-wise ops to
YNNPACK ("ynn fusions"). For this project's convolutions YNNPACK is several times slower
than XLA's own (Eigen) convolutions; keeping YNNPACK for reductions only (without it
XLA:CPU splits the BatchNorm sums into slow windowed reductions) measured, on a 2-core
x86 CPU with jax 0.10.2, batch 256 (README "Speed"):

  forward / kernel gradient, ms   YNNPACK default   reductions only
  D's 5x5/2 conv 64->128              29 / 68           23 / 34
  a 2x2 conv 256->512 (G's blocks)   180 / 471          59 / 64
  recap train step                  1084-1122         1003-1044
  FID Inception features            10.5 img/s        19.3 img/s

`gan/__init__.py` calls `apply_defaults()` on import, so every entry point (train.py,
`python -m gan.*`, notebooks, tests) gets it. The flags only touch the CPU backend.
"""

import os
import warnings

_YNN_FUSION_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
DEFAULT_FLAGS = (f'{_YNN_FUSION_FLAG}=reduce',)
# XLA aborts the process on a flag it does not know, and this one is experimental: set it
# only for the jaxlib minor versions it was measured with.
_TESTED_JAXLIB = ((0, 10),)
# Set to 0 to leave XLA_FLAGS alone.
OPT_OUT_VARIABLE = 'GAN_XLA_CPU_DEFAULTS'


def _jaxlib_minor() -> tuple[int, int]:
  import jaxlib.version
  return tuple(jaxlib.version.__version_info__[:2])


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # A private API: assume not started.
    return False


def apply_defaults() -> bool:
  """Appends `DEFAULT_FLAGS` to XLA_FLAGS; returns whether it did.

  Leaves XLA_FLAGS alone when the user already chose a YNNPACK setting there, when
  GAN_XLA_CPU_DEFAULTS=0, or on an untested jaxlib. Warns when JAX's backends are already
  running (the flags would be ignored): import `gan` before running JAX computations.
  """
  current = os.environ.get('XLA_FLAGS', '')
  if (os.environ.get(OPT_OUT_VARIABLE, '1') == '0' or _YNN_FUSION_FLAG in current
      or _jaxlib_minor() not in _TESTED_JAXLIB):
    return False
  if _backends_started():
    warnings.warn('gan.xla_cpu: JAX already started its backends, so the faster XLA:CPU '
                  f'settings {DEFAULT_FLAGS} are not applied; import gan before running JAX '
                  'computations, or put them in XLA_FLAGS yourself.', stacklevel=2)
    return False
  os.environ['XLA_FLAGS'] = ' '.join([current, *DEFAULT_FLAGS]).strip()
  return True
