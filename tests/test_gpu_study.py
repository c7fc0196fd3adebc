"""The GPU study script, rehearsed on the CPU with smoke configs (benchmarks/gpu_study.sh),
and the cargo that carries CIFAR-10 and the FID weights to a machine without internet
(benchmarks/gpu_cargo.py): GPU minutes are never spent on a typo."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from conftest import load_benchmark, write_binary_split

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_gpu_study_runs_every_stage_and_returns_small_results(tmp_path, tiny_cifar_dir):
  out = tmp_path / 'out'
  env = {**os.environ, 'GPU_STUDY_SMOKE': '1', 'PYTHON': sys.executable,
         'GPU_STUDY_SECONDS': '5000', 'GPU_STUDY_WORK': str(tmp_path / 'work'),
         'GAN_CIFAR10_DIR': str(tiny_cifar_dir)}
  result = subprocess.run(['bash', str(REPOSITORY / 'benchmarks' / 'gpu_study.sh'), str(out)],
                          env=env, capture_output=True, text=True, timeout=3000)
  assert result.returncode == 0, result.stderr[-3000:]
  for stage in ('designs', 'bench', 'ablation', 'big'):
    assert f'== {stage}: exit 0' in result.stderr, result.stderr[-3000:]
  assert sorted(p.name for p in out.iterdir()) == ['results.tar.gz', 'summary.md']
  summary = (out / 'summary.md').read_text()
  for run in ('recap-smoke', 'cpu_dcgan-conditional+smoke', 'cpu_dcgan-no_sn_hinge+smoke',
              'cpu_dcgan-shallow_d+smoke'):
    assert f'| {run} |' in summary
  # The ResNet stage is checked, not trained, in the rehearsal: its commands, with the
  # budget in minutes.
  for run in ('sngan_resnet-smoke', 'biggan_cifar-smoke'):
    assert f'big/runs/{run} --config.train.time_budget_minutes=0.1' in summary
  assert 'matmul_peak_dtype' in summary and 'bfloat16' in summary
  with tarfile.open(out / 'results.tar.gz') as archive:
    names = archive.getnames()
  for stage in ('designs', 'ablation'):
    assert f'{stage}/study.md' in names and f'{stage}/study.png' in names
  assert 'bench.json' in names
  assert 'designs/runs/recap-smoke/progress.gif' in names
  assert any(n.startswith('ablation/runs/cpu_dcgan-shallow_d+smoke/samples/step_') for n in names)
  assert not any('checkpoints' in n or n.endswith('metrics.jsonl') for n in names)
  assert (out / 'results.tar.gz').stat().st_size < 16e6


def test_the_cargo_rebuilds_every_file_byte_for_byte(tmp_path):
  cargo = load_benchmark('gpu_cargo')
  data = tmp_path / 'cifar-10-batches-bin'
  write_binary_split(data, 'train', per_file=150, seed=0)  # 150: a part-filled tile row.
  write_binary_split(data, 'test', per_file=150, seed=10)
  weights = tmp_path / 'w.npz'
  np.savez(weights, w=np.random.default_rng(0).normal(size=(300, 300)).astype(np.float32))
  parts = cargo.pack(data, weights, tmp_path / 'cargo', part_mb=0.3)
  assert len(parts) > 1 and all(p.stat().st_size <= 0.3e6 for p in parts)
  cargo.unpack(list(reversed(parts)), tmp_path / 'there')
  for path in data.iterdir():
    assert (tmp_path / 'there' / 'cifar-10-batches-bin' / path.name).read_bytes() == path.read_bytes()
  assert (tmp_path / 'there' / 'cache' / cargo.WEIGHTS).read_bytes() == weights.read_bytes()
  # A damaged part is found, not used.
  damaged = bytearray(parts[0].read_bytes())
  damaged[-100] ^= 0xFF
  parts[0].write_bytes(bytes(damaged))
  try:
    cargo.unpack(parts, tmp_path / 'again')
  except (SystemExit, tarfile.TarError, OSError) as error:
    assert 'SHA-256' in str(error) or isinstance(error, (tarfile.TarError, OSError))
  else:
    raise AssertionError('a damaged part was unpacked')
