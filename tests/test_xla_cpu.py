"""The XLA:CPU defaults: set on import, really change how XLA compiles, and yield to the user."""

import json
import os
import subprocess
import sys

import pytest

from gan import xla_cpu

# Compiles one convolution and prints XLA_FLAGS and whether XLA gave the conv to YNNPACK.
_PROBE = '''
import json, os, gan, jax, jax.numpy as jnp
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID',
                                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
hlo = jax.jit(conv).lower(jnp.zeros((2, 9, 9, 16)), jnp.zeros((2, 2, 16, 32))).compile().as_text()
print(json.dumps([os.environ.get('XLA_FLAGS', ''), '__ynn_fusion' in hlo]))
'''


def _probe(**env_changes) -> tuple[str, bool]:
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', xla_cpu.OPT_OUT_VARIABLE)}
  env.update(env_changes)
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True,
                       check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  flags, conv_on_ynnpack = json.loads(out.stdout.strip().splitlines()[-1])
  return flags, conv_on_ynnpack


def test_import_keeps_convolutions_off_ynnpack():
  flags, conv_on_ynnpack = _probe()
  assert flags == ' '.join(xla_cpu.DEFAULT_FLAGS)
  assert not conv_on_ynnpack


def test_opt_out_leaves_xla_flags_and_the_default_compilation():
  flags, conv_on_ynnpack = _probe(**{xla_cpu.OPT_OUT_VARIABLE: '0'})
  assert flags == ''
  # What the defaults change: jaxlib's own default gives the convolution to YNNPACK.
  assert conv_on_ynnpack


def test_users_own_ynnpack_setting_wins(monkeypatch):
  mine = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
  monkeypatch.setenv('XLA_FLAGS', mine)
  assert not xla_cpu.apply_defaults()
  assert os.environ['XLA_FLAGS'] == mine


def test_warns_when_jax_already_started(monkeypatch):
  import jax
  jax.devices()  # The test session's backends are running.
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  with pytest.warns(UserWarning, match='already started'):
    assert not xla_cpu.apply_defaults()
  assert os.environ['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2'
