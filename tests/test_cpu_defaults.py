"""The CPU defaults: really change how XLA compiles and where glibc puts big blocks, and
yield to the user."""

import json
import os
import subprocess
import sys

import pytest

from gan import cpu_defaults

# Starts as train.py does (the XLA flags, then tune_malloc, then JAX); compiles one
# convolution, and asks glibc (mallinfo2) how many bytes of a fresh 256 MB array it serves
# with mmap.
_PROBE = '''
import ctypes, json, os
from gan import cpu_defaults
cpu_defaults.apply_xla_flags()
tuned = cpu_defaults.tune_malloc()
import jax, jax.numpy as jnp
import numpy as np
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID',
                                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
hlo = jax.jit(conv).lower(jnp.zeros((2, 9, 9, 16)), jnp.zeros((2, 2, 16, 32))).compile().as_text()

class MallInfo2(ctypes.Structure):
  _fields_ = [(name, ctypes.c_size_t) for name in (
      'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
      'fordblks', 'keepcost')]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblkhd
array = np.ones(2**26, np.float32)
mmapped = libc.mallinfo2().hblkhd - before
print(json.dumps([os.environ.get('XLA_FLAGS', ''), '__ynn_fusion' in hlo, tuned, mmapped]))
'''
_ARRAY_BYTES = 2**28


def _probe(**env_changes) -> tuple[str, bool, bool, int]:
  env = {k: v for k, v in os.environ.items()
         if k not in ('XLA_FLAGS', cpu_defaults.OPT_OUT_VARIABLE)}
  env.update(env_changes)
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True,
                       check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def test_defaults_keep_convolutions_off_ynnpack_and_big_blocks_in_the_heap():
  flags, conv_on_ynnpack, tuned, mmapped = _probe()
  assert flags == ' '.join(cpu_defaults.XLA_FLAGS)
  assert not conv_on_ynnpack
  assert tuned and mmapped == 0


def test_opt_out_changes_nothing():
  flags, conv_on_ynnpack, tuned, mmapped = _probe(**{cpu_defaults.OPT_OUT_VARIABLE: '0'})
  assert flags == '' and not tuned
  # What the defaults change: jaxlib's own default gives the convolution to YNNPACK, and
  # glibc maps the array's pages fresh, and unmaps them on free: so XLA's temporaries, every step.
  assert conv_on_ynnpack
  assert mmapped >= _ARRAY_BYTES


def test_users_own_setting_of_a_flag_wins():
  mine = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
  flags, *_ = _probe(XLA_FLAGS=mine)
  others = [flag for flag in cpu_defaults.XLA_FLAGS if not flag.startswith(mine.split('=')[0])]
  assert len(others) == len(cpu_defaults.XLA_FLAGS) - 1
  assert flags == ' '.join([mine, *others])


def test_nothing_appended_when_the_user_set_every_flag(monkeypatch):
  mine = ' '.join(flag.split('=')[0] + '=true' for flag in cpu_defaults.XLA_FLAGS)
  monkeypatch.setenv('XLA_FLAGS', mine)
  assert not cpu_defaults.apply_xla_flags()
  assert os.environ['XLA_FLAGS'] == mine


def test_warns_when_jax_already_started(monkeypatch):
  import jax
  jax.devices()  # The test session's backends are running.
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  with pytest.warns(UserWarning, match='already started'):
    assert not cpu_defaults.apply_xla_flags()
  assert os.environ['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2'


def test_importing_gan_changes_nothing_in_the_process():
  """Only the entry points apply the settings: `import gan` and its modules leave the
  environment and glibc alone."""
  code = ('import os, json; import gan, gan.loop, gan.evaluate, gan.metrics; '
          'print(json.dumps(os.environ.get("XLA_FLAGS", "")))')
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert json.loads(out.stdout.strip().splitlines()[-1]) == ''
