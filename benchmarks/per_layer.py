"""Each convolution of G and D alone, in JAX and in PyTorch: wall and CPU time per op.

`per_network.py` splits a train step into its networks; this splits the networks into their
strided and transposed convolutions, each timed three ways on random inputs at the step's
shapes: forward, input gradient (dx) and kernel gradient (dw). JAX runs the layer the config
selects (`model.dcgan.conv_transpose_impl`, `model.dcgan.strided_conv_impl`: on the CPU the
rewrites of `gan.ops`); PyTorch the modules of `torch_dcgan.build`. A PyTorch gradient is timed as
forward-and-gradient minus forward (autograd needs the forward); a JAX one alone (XLA drops
the forward a linear layer's gradient does not need).

Besides the median wall time of repeated calls, each op reports the process's CPU time per
call (all threads): a train step keeps both cores of a 2-core CPU busy, so what an op costs
there is its CPU time; an op that finishes sooner alone but burns more CPU does not shorten
the step. `per_step` counts how often the seed's step runs each
op (D on real and fake images; the input gradient of D's first layer only for G's tape), and
the table's last columns weight the CPU times by it.

  python benchmarks/per_layer.py --framework both --config configs/recap.py

`--framework jax|torch` runs one framework in this process; `both` runs each in a process
of its own, one after the other, and prints them side by side.
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()  # As train.py and gan.bench, before JAX starts
  cpu_defaults.tune_malloc()      # and before threads start.

OPS = ('fwd', 'dx', 'dw')


def conv_layers(config) -> list[dict]:
  """G's transposed and D's strided convolutions in order: name, input [H, W, C], features,
  and how many times the seed's step runs each op of it."""
  from gan import data
  model, layers = config.model.dcgan, []
  size, channels = model.G.base_size, model.G.base_channels
  for i, features in enumerate([*model.G.channels, model.G.out_channels]):
    layers.append({'name': f'G.ConvTranspose_{i}', 'input': (size, size, channels),
                   'features': features, 'per_step': {'fwd': 1, 'dx': 1, 'dw': 1}})
    size, channels = 2 * size, features
  size, _, channels = data.dataset_spec(config.data).image_shape
  for i, features in enumerate(model.D.channels):
    # Forward and kernel gradient on the real and on the fake batch; input gradients on
    # both for D's tape (the first layer's input needs none) and on the fake one for G's.
    layers.append({'name': f'D.Conv_{i}', 'input': (size, size, channels),
                   'features': features, 'per_step': {'fwd': 2, 'dx': 3 if i else 1, 'dw': 2}})
    size, channels = size // 2, features
  return layers


def _time(fn, repeats: int) -> dict[str, float]:
  """Median wall ms of `repeats` calls, and the process's CPU ms per call over them."""
  fn(), fn()  # Compile / warm up.
  walls = []
  cpu_start = time.process_time()
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    walls.append((time.perf_counter() - start) * 1e3)
  cpu = (time.process_time() - cpu_start) * 1e3 / repeats
  return {'wall_ms': statistics.median(walls), 'cpu_ms': cpu}


def _time_jax_ops(module, x, repeats: int) -> dict[str, dict]:
  """Forward, input gradient and kernel gradient of one Flax layer, each compiled alone."""
  import jax
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  variables = module.init(keys[0], x)
  cotangent = jax.random.normal(keys[1], jax.eval_shape(module.apply, variables, x).shape)
  fns = {'fwd': lambda v, x: module.apply(v, x),
         'dx': lambda v, x: jax.vjp(lambda x: module.apply(v, x), x)[1](cotangent)[0],
         'dw': lambda v, x: jax.vjp(lambda v: module.apply(v, x), v)[1](cotangent)[0]}
  results = {}
  for op, fn in fns.items():
    compiled = jax.jit(fn).lower(variables, x).compile()
    results[op] = _time(functools.partial(_run_jax, compiled, variables, x), repeats)
  return results


def _run_jax(compiled, variables, x) -> None:
  import jax
  jax.block_until_ready(compiled(variables, x))


def time_jax(config, batch_size: int, repeats: int) -> dict[str, dict]:
  import jax

  from gan.models import dcgan
  block, results = config.model.dcgan, {}
  for layer in conv_layers(config):
    if layer['name'].startswith('G.'):
      module = dcgan.conv_transpose_layer(block.conv_transpose_impl)(
          layer['features'], block.G.kernel_size, 2, use_bias=False, winograd=block.winograd)
    else:
      module = dcgan.strided_conv_layer(block.strided_conv_impl)(
          layer['features'], block.D.kernel_size, 2, winograd=block.winograd)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch_size, *layer['input']))
    results[layer['name']] = _time_jax_ops(module, x, repeats)
  return results


def _time_torch_ops(module, x, repeats: int) -> dict[str, dict]:
  """Forward; input and kernel gradients as forward-and-gradient minus forward."""
  import torch
  cotangent = torch.randn_like(module(x))

  def forward():
    with torch.no_grad():
      module(x)

  fwd = _time(forward, repeats)
  dx = _time(lambda: torch.autograd.grad(module(x), [x], cotangent), repeats)
  dw = _time(lambda: torch.autograd.grad(module(x), [module.weight], cotangent), repeats)
  return {'fwd': fwd, 'dx': {k: dx[k] - fwd[k] for k in dx},
          'dw': {k: dw[k] - fwd[k] for k in dw}}


def time_torch(config, batch_size: int, repeats: int) -> dict[str, dict]:
  import torch
  from torch import nn

  import torch_dcgan
  generator, discriminator = torch_dcgan.build(config)
  modules = ([m for m in generator if isinstance(m, nn.ConvTranspose2d)] +
             [m for m in discriminator if isinstance(m, nn.Conv2d)])
  results = {}
  for layer, module in zip(conv_layers(config), modules, strict=True):
    height, width, channels = layer['input']
    x = torch.randn(batch_size, channels, height, width, requires_grad=True)
    results[layer['name']] = _time_torch_ops(module, x, repeats)
  return results


def run(framework: str, config, batch_size: int, repeats: int) -> dict[str, dict]:
  if framework == 'torch':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # torch_dcgan beside us.
    return time_torch(config, batch_size, repeats)
  return time_jax(config, batch_size, repeats)


def step_cpu_ms(config, results: dict[str, dict]) -> dict[str, float]:
  """CPU ms per train step of each layer: its ops' CPU times weighted by `per_step`."""
  return {layer['name']: sum(n * results[layer['name']][op]['cpu_ms']
                             for op, n in layer['per_step'].items())
          for layer in conv_layers(config)}


def format_table(config, results: dict[str, dict[str, dict]]) -> str:
  """Wall and CPU ms of each op per framework; per step, CPU ms per layer and the total."""
  frameworks = list(results)
  head = f'{"layer":20s} {"op":4s} {"x/step":>6s} ' + ' '.join(
      f'{fw + " wall":>11s} {fw + " cpu":>10s}' for fw in frameworks)
  lines = [head, '-' * len(head)]
  per_step = {fw: step_cpu_ms(config, results[fw]) for fw in frameworks}
  for layer in conv_layers(config):
    name = layer['name']
    for op in OPS:
      lines.append(f'{name:20s} {op:4s} {layer["per_step"][op]:6d} ' + ' '.join(
          f'{results[fw][name][op]["wall_ms"]:11.1f} {results[fw][name][op]["cpu_ms"]:10.1f}'
          for fw in frameworks))
  lines.append('')
  lines.append('CPU ms per step, by layer: ' + '; '.join(
      f'{layer["name"]} ' + ' / '.join(f'{per_step[fw][layer["name"]]:.0f}' for fw in frameworks)
      for layer in conv_layers(config)) + f' ({" / ".join(frameworks)})')
  lines.append('all convolutions: ' + ' / '.join(
      f'{fw} {sum(per_step[fw].values()):.0f}' for fw in frameworks) + ' CPU ms per step')
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--framework', choices=('jax', 'torch', 'both'), required=True)
  parser.add_argument('--config', default='configs/recap.py')
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--repeats', type=int, default=9)
  parser.add_argument('--json', help='Also write the results here.')
  args = parser.parse_args(argv)
  from gan.config_files import load_config
  config = load_config(args.config)
  if args.framework == 'both':
    results = {}
    for framework in ('jax', 'torch'):
      out = subprocess.run(
          [sys.executable, os.path.abspath(__file__), '--framework', framework,
           '--config', args.config, '--batch_size', str(args.batch_size),
           '--repeats', str(args.repeats)],
          check=True, stdout=subprocess.PIPE, text=True).stdout
      results.update(json.loads(out.strip().splitlines()[-1])['results'])
  else:
    results = {args.framework: run(args.framework, config, args.batch_size, args.repeats)}
  record = {'config': args.config, 'batch_size': args.batch_size, 'repeats': args.repeats,
            'cpus': len(os.sched_getaffinity(0)), 'results': results}
  if args.framework == 'both':
    print(format_table(config, results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(record, f, indent=1)
  print(json.dumps(record))


if __name__ == '__main__':
  main(sys.argv[1:])
