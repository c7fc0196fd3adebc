"""G alone and D alone, forward and backward, in JAX or in PyTorch: where a step's time goes.

`gan.bench --torch` compares whole train steps; this splits one into its networks, each in
train mode (batch statistics) on random inputs, timed as the median of repeated calls:

* G: forward and the gradient of every parameter (an output cotangent given);
* D, fake batch: forward and the gradients of the parameters and of the input, as the
  step needs for G's images;
* D, real batch: forward and the parameters' gradients only.

Run one framework per process, the other after it, and compare (docs/performance.md):

  python benchmarks/per_network.py --framework jax --config configs/recap.py
  python benchmarks/per_network.py --framework torch --config configs/recap.py

Pinned to one core (`taskset -c 0 ...`), JAX sees one CPU and PyTorch takes one thread
(its default, as in `benchmarks/torch_dcgan.py`: one per core the process may use).
"""

import argparse
import json
import os
import statistics
import sys
import time

if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()  # As train.py and gan.bench, before JAX starts
  cpu_defaults.tune_malloc()      # and before threads start.


def _median_ms(fn, repeats: int) -> float:
  fn(), fn()  # Compile / warm up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def time_jax(config, batch_size: int, repeats: int) -> dict[str, float]:
  import jax
  import jax.numpy as jnp

  from gan import models
  from gan.networks import Networks
  networks = Networks(config)
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  z = networks.latents(keys[0], batch_size)
  labels = networks.labels(keys[1], batch_size)
  images = jax.random.normal(keys[2], (batch_size, *networks.spec.image_shape))
  g_vars, d_vars = networks.init(keys[3])
  g_cotangent = jax.random.normal(keys[4], images.shape)
  collections = lambda variables: {name: variables.get(name, {})
                                   for name in models.STATE_COLLECTIONS}

  def g_apply(params):
    return networks.generate_train(params, collections(g_vars), z, labels)[0]

  def d_apply(params, x):
    return networks.discriminate_train(params, collections(d_vars), x, labels,
                                       keys[5])[0]

  def d_grads(params, x, wrt):
    logits, vjp = jax.vjp(d_apply, params, x)
    grads = vjp(jnp.ones_like(logits))
    return grads if wrt == 'both' else grads[0]

  g_step = jax.jit(lambda p: jax.vjp(g_apply, p)[1](g_cotangent))
  d_fake = jax.jit(lambda p, x: d_grads(p, x, 'both'))
  d_real = jax.jit(lambda p, x: d_grads(p, x, 'params'))
  run = lambda fn, *args: (lambda: jax.block_until_ready(fn(*args)))
  return {'G': _median_ms(run(g_step, g_vars['params']), repeats),
          'D fake (params and input)': _median_ms(run(d_fake, d_vars['params'], images), repeats),
          'D real (params)': _median_ms(run(d_real, d_vars['params'], images), repeats)}


def time_torch(config, batch_size: int, repeats: int) -> dict[str, float]:
  import importlib

  import torch

  from gan import bench
  # The family's PyTorch reference beside this file (torch_dcgan, torch_resnet).
  reference = importlib.import_module(
      bench.torch_reference_script(config.model.name).stem)
  generator, discriminator = reference.build(config)
  z = torch.randn(batch_size, config.model.latent_dim)
  images = torch.randn(batch_size, 3, 32, 32, requires_grad=True)
  g_cotangent = torch.randn(batch_size, 3, 32, 32)
  g_params, d_params = list(generator.parameters()), list(discriminator.parameters())

  def g_step():
    torch.autograd.grad(generator(z), g_params, g_cotangent)

  def d_fake():
    logits = discriminator(images)
    torch.autograd.grad(logits, d_params + [images], torch.ones_like(logits))

  def d_real():
    logits = discriminator(images.detach())
    torch.autograd.grad(logits, d_params, torch.ones_like(logits))

  return {'G': _median_ms(g_step, repeats),
          'D fake (params and input)': _median_ms(d_fake, repeats),
          'D real (params)': _median_ms(d_real, repeats)}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--framework', choices=('jax', 'torch'), required=True)
  parser.add_argument('--config', default='configs/recap.py')
  parser.add_argument('--batch_size', type=int, default=0,
                      help="default: the config's train.batch_size")
  parser.add_argument('--repeats', type=int, default=7)
  parser.add_argument('--set', action='append', default=[], help='dotted.key=value')
  args = parser.parse_args(argv)
  from gan.config_files import apply_overrides, load_config
  config = load_config(args.config)
  apply_overrides(config, args.set)
  timer = time_jax if args.framework == 'jax' else time_torch
  if args.framework == 'torch':  # The PyTorch references sit beside this file.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  batch_size = args.batch_size or config.train.batch_size
  ms = timer(config, batch_size, args.repeats)
  print(json.dumps({'framework': args.framework, 'config': ' '.join([args.config, *args.set]),
                    'batch_size': batch_size, 'median_ms': ms}))


if __name__ == '__main__':
  main(sys.argv[1:])
