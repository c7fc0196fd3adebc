"""Config files load by `path[:variant]`, and `dotted.key=value` overrides apply safely."""

import subprocess
import sys
from pathlib import Path

import pytest

from gan.config_files import apply_overrides, load_config, upgrade


def test_overrides_parse_literals_and_strings():
  config = load_config('configs/recap.py')
  apply_overrides(config, ['model.compute_dtype=bfloat16', 'optim.G.learning_rate=1e-3',
                           'model.dcgan.D.channels=(32, 64)', 'train.batch_size=64',
                           'log.tensorboard=False'])
  assert config.model.compute_dtype == 'bfloat16'
  assert config.optim.G.learning_rate == 1e-3 and config.optim.D.learning_rate == 2e-4
  assert tuple(config.model.dcgan.D.channels) == (32, 64)
  assert config.train.batch_size == 64 and config.log.tensorboard is False


@pytest.mark.parametrize('override,error,match', [
    ('train.batch_sise=64', KeyError, "no field 'train.batch_sise'"),
    ('trian.batch_size=64', KeyError, "no field 'trian'"),
    ('train.batch_size', ValueError, 'dotted.key=value'),
    ('train.batch_size=big', TypeError, "Could not override field 'batch_size'"),
])
def test_bad_overrides_fail_loudly(override, error, match):
  config = load_config('configs/baseline.py')
  with pytest.raises(error, match=match):
    apply_overrides(config, [override])


def test_unknown_variant_and_missing_file_fail():
  with pytest.raises(ValueError, match='Unknown config variant'):
    load_config('configs/recap.py:huge')
  with pytest.raises(FileNotFoundError, match='not found'):
    load_config('configs/nope.py')


def test_a_config_recorded_before_families_had_blocks_upgrades_to_the_same_run():
  """config.json of a run from before `model.dcgan`, periods and the new train fields
  (tests/data: the baseline as commit 36bd78c recorded it, FID every 5 epochs and a
  checkpoint every 10) reads as today's baseline with those two settings, sampled as it
  was then (with G's running statistics)."""
  import json
  from pathlib import Path
  stored = json.loads((Path(__file__).parent / 'data' / 'config_before_families.json').read_text())
  today = json.loads(load_config('configs/baseline.py').to_json_best_effort())
  today['eval']['every'], today['checkpoint']['every'] = '5 epochs', '10 epochs'
  today['eval']['g_statistics'] = 'running'
  assert upgrade(stored) == today


@pytest.mark.parametrize('spec,message', [
    ('configs/nosuch.py', "No such file or directory: 'configs/nosuch.py'"),
    ('configs/recap.py:nosuch', "Unknown config variant 'nosuch'; use comma-separated names"),
])
def test_train_py_with_a_missing_config_file_or_variant_stops_naming_it(tmp_path, spec, message):
  root = Path(__file__).resolve().parents[1]
  result = subprocess.run([sys.executable, 'train.py', '--config', spec,
                           '--workdir', str(tmp_path / 'run')],
                          cwd=root, capture_output=True, text=True)
  assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
  assert not (tmp_path / 'run').exists()
