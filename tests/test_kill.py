"""kill -9 at any moment loses nothing: real SIGKILLs of a training process, then resumes.

The run is killed at seeded random moments (while it steps, saves checkpoints every step,
writes grids, metrics and summaries), restarted by the same command each time, and finally
left to finish. It must end bit-identical to an uninterrupted run of the same command,
with a metrics.jsonl holding each step exactly once and no temporary file left behind.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from gan import evaluate, visualize

ROOT = Path(__file__).resolve().parents[1]
KILLS = 4


def _command(workdir: Path, data_dir: Path) -> list[str]:
  return [sys.executable, str(ROOT / 'train.py'), '--config', 'configs/recap.py:smoke',
          '--workdir', str(workdir), f'--config.data.dir={data_dir}',
          '--config.log.progress_bar=False', '--config.train.log_every_steps=1',
          "--config.checkpoint.every=1 step", "--config.eval.samples_every=1 step"]


def _logged_steps(workdir: Path) -> int:
  try:
    return sum(1 for r in visualize.read_metrics(workdir / 'metrics.jsonl') if 'G/loss' in r)
  except (FileNotFoundError, ValueError):
    return 0


def test_sigkill_at_random_moments_then_resume_ends_bit_identical(tmp_path, tiny_cifar_dir):
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  reference, killed = tmp_path / 'reference', tmp_path / 'killed'
  subprocess.run(_command(reference, tiny_cifar_dir), cwd=ROOT, env=env, check=True,
                 capture_output=True)
  total = _logged_steps(reference)
  assert total == 12  # 96 images / 16 a step, 2 epochs.

  rng = random.Random(0)
  kills = []  # (training steps logged when killed, seconds after that step showed)
  while len(kills) < KILLS:
    before = _logged_steps(killed)
    target = min(total - 1, before + rng.randint(1, 3))
    process = subprocess.Popen(_command(killed, tiny_cifar_dir), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _logged_steps(killed) < target and process.poll() is None:
      assert time.monotonic() < deadline, 'the run made no progress'
      time.sleep(0.05)
    delay = rng.uniform(0, 0.6)  # Lands before, during or after the step's save and grid.
    time.sleep(delay)
    if process.poll() is not None:
      break  # It finished first: no kill to count.
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    kills.append((_logged_steps(killed), round(delay, 2)))
  assert len(kills) == KILLS, kills
  print(f'kills (steps logged when killed, seconds after that step showed): {kills}')
  assert any(0 < steps < total for steps, _ in kills)
  subprocess.run(_command(killed, tiny_cifar_dir), cwd=ROOT, env=env, check=True,
                 capture_output=True)

  # Each step's record exactly once, in order, and the same numbers as without kills
  # (all but the wall-clock ones).
  records = [r for r in visualize.read_metrics(killed / 'metrics.jsonl') if 'G/loss' in r]
  assert [r['step'] for r in records] == list(range(1, total + 1))
  expected = [r for r in visualize.read_metrics(reference / 'metrics.jsonl') if 'G/loss' in r]
  timeless = lambda r: {k: v for k, v in r.items() if k not in ('img_per_sec', 'time_s', 'cpu_s')}
  assert [timeless(r) for r in records] == [timeless(r) for r in expected]
  # The final state, bit for bit.
  final, wanted = (jax.device_get(evaluate.load_run(w)[2]) for w in (killed, reference))
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(wanted)):
    np.testing.assert_array_equal(a, b)
  # Whole files only: no temporary left, every JSON file parses, the grids all there.
  leftovers = [p for p in killed.rglob('*') if '.tmp' in p.name or 'orbax-checkpoint-tmp' in p.name]
  assert leftovers == []
  json.loads((killed / 'config.json').read_text())
  assert [s for s, _ in visualize.grid_files(killed)] == [s for s, _ in visualize.grid_files(reference)]
