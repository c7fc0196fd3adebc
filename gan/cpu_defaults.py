"""CPU runtime settings this project measured faster, applied before JAX starts.

Both are process-wide, applied by the entry points (train.py, `python -m gan.X`, the
tests' conftest), never on `import gan`; GAN_CPU_DEFAULTS=0 turns both off. What each
bought, measured on a 2-core x86 CPU with jax 0.10.2, is in docs/performance.md.

1. XLA_FLAGS (`apply_xla_flags`): convolutions off YNNPACK. jaxlib 0.10's XLA:CPU hands
   convolutions, dots, reductions and element-wise ops to YNNPACK ("ynn fusions"); its
   convolutions run this project's layers several times slower than XLA's own (Eigen).
   YNNPACK stays on for reductions, without which XLA:CPU splits the BatchNorm sums into
   slow windowed ones. And XLA:CPU's older loop emitters instead of its new MLIR fusion
   emitters (--xla_cpu_use_fusion_emitters=false): faster steps in alternating runs,
   although layout transposes got slower; a measured net effect.

2. glibc malloc (`tune_malloc`), set by the programs that run many steps (train.py,
   `gan.bench`) before their imports start threads: one arena, no mmap, no trimming.
   XLA:CPU mallocs each step's temporaries (hundreds of MB) from its worker threads;
   glibc serves such blocks with fresh mmap pages and unmaps them on free, so every step
   page-faulted and zero-filled them again. Kept in the heap, the next step reuses them.
   The process keeps its peak memory. Not for every program: the one arena slows XLA's
   multi-threaded compiler, which the tests (much compiling, few steps) feel. Only on
   glibc, and not when a GPU/TPU plugin is installed (device memory is what matters
   there, and one arena could make many host threads contend).
"""

import ctypes
import importlib.util
import os
import warnings

OPT_OUT_VARIABLE = 'GAN_CPU_DEFAULTS'  # Set to 0 to change nothing.

XLA_FLAGS = ('--xla_cpu_experimental_ynn_fusion_type=reduce',
             '--xla_cpu_use_fusion_emitters=false')
# XLA aborts the process on a flag it does not know, and these can go away (one is
# experimental): set them only for the jaxlib minor versions they were measured with.
_TESTED_JAXLIB = ((0, 10),)

# mallopt(3) parameters; M_TRIM_THRESHOLD = -1 disables trimming.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_ACCELERATOR_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                        'jax_rocm7_plugin', 'libtpu')


def _jaxlib_minor() -> tuple[int, ...]:
  import jaxlib.version
  return tuple(jaxlib.version.__version_info__[:2])


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # A private API: assume not started.
    return False


def _opted_out() -> bool:
  return os.environ.get(OPT_OUT_VARIABLE, '1') == '0'


def apply_xla_flags() -> bool:
  """Appends `XLA_FLAGS` to the environment's; returns whether it appended any.

  A flag the user already set in XLA_FLAGS keeps the user's value. Nothing is appended
  when opted out or on an untested jaxlib. Warns when JAX's backends already run (they
  read XLA_FLAGS when they start): call this before running JAX computations.
  """
  current = os.environ.get('XLA_FLAGS', '')
  missing = [flag for flag in XLA_FLAGS if flag.split('=')[0] not in current]
  if _opted_out() or not missing or _jaxlib_minor() not in _TESTED_JAXLIB:
    return False
  if _backends_started():
    warnings.warn('gan.cpu_defaults: JAX already started its backends, so the faster XLA:CPU '
                  f'flags {XLA_FLAGS} are not applied; call apply_xla_flags() before running '
                  'JAX computations, or put them in XLA_FLAGS yourself.', stacklevel=2)
    return False
  os.environ['XLA_FLAGS'] = ' '.join([current, *missing]).strip()
  return True


def tune_malloc() -> bool:
  """One glibc arena, no mmap, no trimming; returns whether it set them.

  Call it first thing in a program, before imports that start threads: a thread that
  already made its own arena keeps it. Does nothing when opted out, off glibc, or with an
  accelerator plugin installed.
  """
  if _opted_out() or any(importlib.util.find_spec(name) for name in _ACCELERATOR_PLUGINS):
    return False
  libc = ctypes.CDLL(None)
  if not hasattr(libc, 'gnu_get_libc_version'):
    return False
  return all(libc.mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
