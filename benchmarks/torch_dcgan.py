"""PyTorch reference of the seed's two DCGANs and their simultaneous train step.

The speed yardstick for `python -m gan.bench --torch`: same layers, parameter counts,
losses and optimiser as `configs/baseline.py` / `configs/recap.py`, built from the same
config, trained with the seed's step (one forward pass, G and D gradients from their own
losses, both Adam updates). PyTorch pads 5x5/2 convolutions symmetrically (2, 2) where
TF/JAX's SAME pads (1, 2); the work is the same. Needs `pip install -e '.[torch]'`.

Run as a program, it times the step in a process of its own, as `gan.bench --torch` does
in alternating rounds, and prints the windows' img/s as JSON:

  python benchmarks/torch_dcgan.py --config configs/recap.py --batch_size 256 --steps 3 --windows 5
"""

import argparse
import json
import sys
import time

if __name__ == '__main__':
  # The malloc settings gan.bench's own process gets, before torch starts its threads.
  from gan import cpu_defaults
  cpu_defaults.tune_malloc()

import ml_collections  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def _act(cfg: ml_collections.ConfigDict) -> nn.Module:
  return nn.ReLU() if cfg.activation == 'relu' else nn.LeakyReLU(cfg.leaky_slope)


class _Reshape(nn.Module):
  def __init__(self, *shape):
    super().__init__()
    self.shape = shape

  def forward(self, x):
    return x.reshape(x.shape[0], *self.shape)


def check_reproducible(config: ml_collections.ConfigDict) -> None:
  """Raises for a config whose step this reference does not compute (it times the seed's
  step only), so that `gan.bench --torch` never compares two different steps."""
  differences = [f'{name}={value!r}' for name, value, seed in (
      ('model.name', config.model.name, 'dcgan'),
      ('model.conditional', config.model.conditional, False),
      ('train.update_rule', config.train.update_rule, 'simultaneous'),
      ('train.n_dis', config.train.n_dis, 1),
      ('loss.name', config.loss.name, 'non_saturating'),
      ('loss.gradient_penalty', config.loss.gradient_penalty, 0.0),
      ('model.dcgan.G.spectral_norm', config.model.dcgan.G.spectral_norm, False),
      ('model.dcgan.D.spectral_norm', config.model.dcgan.D.spectral_norm, False),
      ('loss.r1_gamma', config.loss.r1_gamma, 0.0),
      ('augment.policy', config.augment.policy, ''),
      ('train.g_ema_decay', config.train.g_ema_decay, 0.0),
      ('train.g_ema_half_life_kimg', config.train.g_ema_half_life_kimg, 0.0),
      ('optim.G.schedule', config.optim.G.schedule, 'constant'),
      ('optim.D.schedule', config.optim.D.schedule, 'constant')) if value != seed]
  if differences:
    raise ValueError(f'The PyTorch reference computes the seed\'s DCGAN step only; this config '
                     f'has {", ".join(differences)}.')


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(G, D) as torch modules, NCHW, for a 'dcgan' config."""
  check_reproducible(config)
  m = config.model.dcgan
  # Keras/Flax momentum 0.99 (weight of the old average) is PyTorch momentum 0.01.
  bn2d = lambda c: nn.BatchNorm2d(c, eps=m.bn_epsilon, momentum=1 - m.bn_momentum)
  k, pad = m.G.kernel_size, m.G.kernel_size // 2
  size, channels = m.G.base_size, m.G.base_channels
  g_layers = [nn.Linear(config.model.latent_dim, size * size * channels, bias=False),
              nn.BatchNorm1d(size * size * channels, eps=m.bn_epsilon, momentum=1 - m.bn_momentum),
              _act(m.G), _Reshape(channels, size, size)]
  in_ch = channels
  for out_ch in m.G.channels:
    g_layers += [nn.ConvTranspose2d(in_ch, out_ch, k, 2, pad, output_padding=1, bias=False),
                 bn2d(out_ch), _act(m.G)]
    in_ch = out_ch
  g_layers += [nn.ConvTranspose2d(in_ch, m.G.out_channels, k, 2, pad, output_padding=1,
                                  bias=False), nn.Tanh()]

  d_layers, in_ch, spatial = [], m.G.out_channels, 32
  for out_ch, use_bn in zip(m.D.channels, m.D.batch_norm):
    d_layers.append(nn.Conv2d(in_ch, out_ch, m.D.kernel_size, 2, m.D.kernel_size // 2))
    if use_bn:
      d_layers.append(bn2d(out_ch))
    d_layers.append(_act(m.D))
    if m.D.dropout > 0:
      d_layers.append(nn.Dropout(m.D.dropout))
    in_ch, spatial = out_ch, spatial // 2
  d_layers += [nn.Flatten(), nn.Linear(in_ch * spatial * spatial, 1)]
  return nn.Sequential(*g_layers), nn.Sequential(*d_layers)


def make_step(config: ml_collections.ConfigDict, generator: nn.Module, discriminator: nn.Module):
  """The seed's simultaneous step; returns step(real [N, 3, 32, 32] in [-1, 1])."""
  adam = lambda params, o: torch.optim.Adam(params, lr=o.learning_rate, betas=(o.b1, o.b2),
                                            eps=o.eps)
  g_opt = adam(generator.parameters(), config.optim.G)
  d_opt = adam(discriminator.parameters(), config.optim.D)
  bce = nn.BCEWithLogitsLoss()
  latent = config.model.latent_dim

  def step(real: torch.Tensor) -> tuple[float, float]:
    z = torch.randn(real.shape[0], latent, device=real.device)
    fake = generator(z)
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    g_loss = bce(fake_logits, torch.ones_like(fake_logits))
    d_loss = (bce(real_logits, torch.ones_like(real_logits)) +
              bce(fake_logits, torch.zeros_like(fake_logits)))
    g_grads = torch.autograd.grad(g_loss, list(generator.parameters()), retain_graph=True)
    d_grads = torch.autograd.grad(d_loss, list(discriminator.parameters()))
    for p, g in zip(generator.parameters(), g_grads):
      p.grad = g
    for p, g in zip(discriminator.parameters(), d_grads):
      p.grad = g
    g_opt.step()
    d_opt.step()
    return g_loss.detach(), d_loss.detach()

  return step


def count_parameters(module: nn.Module) -> tuple[int, int]:
  """(trainable, BatchNorm running statistics), as Keras counts them."""
  trainable = sum(p.numel() for p in module.parameters())
  stats = sum(b.numel() for name, b in module.named_buffers() if 'running' in name)
  return trainable, stats


def time_step(config: ml_collections.ConfigDict, batch_size: int, num_steps: int,
              num_windows: int, warmup: int, build_fn=None, make_step_fn=None
              ) -> tuple[list[float], list[float]]:
  """img/s (real images shown to D: `train.n_dis` batches a step) of each timed window,
  and the process's CPU ms per step in it (all threads), on the GPU when PyTorch sees one
  (float32, cuDNN autotuned, as XLA autotunes its own), else on the CPU. `build_fn` and
  `make_step_fn` give another family's reference (default: this file's DCGAN)."""
  torch.manual_seed(config.seed)
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  if device.type == 'cuda':
    torch.backends.cudnn.benchmark = True
  generator, discriminator = (net.to(device) for net in (build_fn or build)(config))
  step = (make_step_fn or make_step)(config, generator, discriminator)
  per_step = config.train.n_dis * batch_size
  real = torch.rand(per_step, 3, 32, 32, device=device) * 2 - 1
  # CUDA kernels run asynchronously: a window ends when the device has finished its steps.
  synchronize = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
  for _ in range(warmup):
    step(real)
  synchronize()
  rates, cpu_ms = [], []
  for _ in range(num_windows):
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(num_steps):
      step(real)
    synchronize()
    rates.append(num_steps * per_step / (time.perf_counter() - start))
    cpu_ms.append(1000 * (time.process_time() - cpu_start) / num_steps)
  return rates, cpu_ms


def main(argv: list[str], build_fn=None, make_step_fn=None) -> None:
  """The program; `build_fn` and `make_step_fn` as `time_step` takes them."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True, help='A config file, as gan.bench takes.')
  parser.add_argument('--set', action='append', default=[], help='dotted.key=value')
  parser.add_argument('--batch_size', type=int, required=True)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--windows', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  args = parser.parse_args(argv)
  from gan.config_files import apply_overrides, load_config
  config = load_config(args.config)
  apply_overrides(config, args.set)
  config.train.batch_size = args.batch_size
  rates, cpu_ms = time_step(config, args.batch_size, args.steps, args.windows, args.warmup,
                            build_fn, make_step_fn)
  device = torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'
  print(json.dumps({'img_per_sec': rates, 'cpu_ms_per_step': cpu_ms, 'torch': torch.__version__,
                    'torch_threads': torch.get_num_threads(), 'torch_device': device}))


if __name__ == '__main__':
  main(sys.argv[1:])
