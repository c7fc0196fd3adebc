"""PyTorch reference of the SN-GAN ResNet (`gan/models/resnet.py`) and its alternating step.

The speed yardstick of `python -m gan.bench --torch` for `model.name='resnet'` configs
(configs/sngan_resnet.py): the same blocks, parameter counts (4,276,739 / 1,053,824 at
256 / 128 channels), initialisation, spectral norm (`torch.nn.utils.parametrizations.
spectral_norm`: one power iteration per training forward, as Flax's SpectralNorm with
`update_stats`), hinge loss and step: `n_dis` D updates, each on its own real batch and
fresh noise, then one G update on `g_batch_size` fresh samples against the updated D;
Adam with its linear decay, and the EMA of G with its ramped decay. Needs
`pip install -e '.[torch]'`.

Run as a program, it times the step like `benchmarks/torch_dcgan.py` and prints the
windows' img/s (real images shown to D) as JSON:

  python benchmarks/torch_resnet.py --config configs/sngan_resnet.py --batch_size 64 --steps 1 --windows 3
"""

import os
import sys

if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.tune_malloc()  # Before torch starts its threads, as gan.bench's process.

import math  # noqa: E402

import ml_collections  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # torch_dcgan beside us.
import torch_dcgan  # noqa: E402

count_parameters = torch_dcgan.count_parameters


def check_reproducible(config: ml_collections.ConfigDict) -> None:
  """Raises for a config whose step this reference does not compute."""
  differences = [f'{name}={value!r}' for name, value, ours in (
      ('model.name', config.model.name, 'resnet'),
      ('model.conditional', config.model.conditional, False),
      ('train.update_rule', config.train.update_rule, 'alternating'),
      ('loss.name', config.loss.name, 'hinge'),
      ('loss.gradient_penalty', config.loss.gradient_penalty, 0.0),
      ('loss.r1_gamma', config.loss.r1_gamma, 0.0),
      ('augment.policy', config.augment.policy, ''),
      ('optim.G.name', config.optim.G.name, 'adam'),
      ('optim.D.name', config.optim.D.name, 'adam')) if value != ours]
  if differences:
    raise ValueError(f"The PyTorch reference computes the SN-GAN ResNet's hinge step only; "
                     f"this config has {', '.join(differences)}.")


def _conv(cin: int, cout: int, kernel_size: int, residual: bool, spectral: bool) -> nn.Module:
  """A SAME stride-1 convolution with bias, initialised as the JAX family's."""
  conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)
  nn.init.xavier_uniform_(conv.weight, gain=math.sqrt(2) if residual else 1.0)
  nn.init.zeros_(conv.bias)
  return nn.utils.parametrizations.spectral_norm(conv) if spectral else conv


def _linear(cin: int, cout: int, bias: bool, spectral: bool) -> nn.Module:
  linear = nn.Linear(cin, cout, bias=bias)
  nn.init.xavier_uniform_(linear.weight)
  if bias:
    nn.init.zeros_(linear.bias)
  return nn.utils.parametrizations.spectral_norm(linear) if spectral else linear


def _upsample(x: torch.Tensor) -> torch.Tensor:
  return F.interpolate(x, scale_factor=2, mode='nearest')


class GBlock(nn.Module):
  def __init__(self, channels: int, bn, spectral: bool):
    super().__init__()
    self.bn0, self.bn1 = bn(channels), bn(channels)
    self.conv0 = _conv(channels, channels, 3, True, spectral)
    self.conv1 = _conv(channels, channels, 3, True, spectral)
    self.shortcut = _conv(channels, channels, 1, False, spectral)

  def forward(self, x):
    h = self.conv0(_upsample(F.relu(self.bn0(x))))
    h = self.conv1(F.relu(self.bn1(h)))
    return h + self.shortcut(_upsample(x))


class DBlock(nn.Module):
  def __init__(self, cin: int, cout: int, downsample: bool, optimized: bool, spectral: bool):
    super().__init__()
    self.downsample, self.optimized = downsample, optimized
    self.conv0 = _conv(cin, cout, 3, True, spectral)
    self.conv1 = _conv(cout, cout, 3, True, spectral)
    self.learnable = optimized or downsample or cin != cout
    if self.learnable:
      self.shortcut = _conv(cin, cout, 1, False, spectral)

  def forward(self, x):
    h = self.conv0(x if self.optimized else F.relu(x))
    h = self.conv1(F.relu(h))
    if self.downsample:
      h = F.avg_pool2d(h, 2)
    if self.optimized:
      return h + self.shortcut(F.avg_pool2d(x, 2))
    if not self.learnable:
      return h + x
    shortcut = self.shortcut(x)
    return h + (F.avg_pool2d(shortcut, 2) if self.downsample else shortcut)


class Generator(nn.Module):
  def __init__(self, latent_dim: int, block: ml_collections.ConfigDict):
    super().__init__()
    c, spectral = block.G.channels, block.G.spectral_norm
    # Flax momentum 0.9 (weight of the old average) is PyTorch momentum 0.1.
    bn = lambda ch: nn.BatchNorm2d(ch, eps=block.bn_epsilon, momentum=1 - block.bn_momentum)
    self.channels = c
    self.dense = _linear(latent_dim, 16 * c, True, spectral)
    self.blocks = nn.Sequential(*[GBlock(c, bn, spectral) for _ in range(block.G.num_blocks)])
    self.bn = bn(c)
    self.out = _conv(c, block.G.out_channels, 3, False, spectral)

  def forward(self, z):
    x = self.dense(z).reshape(z.shape[0], 4, 4, self.channels).permute(0, 3, 1, 2)
    return torch.tanh(self.out(F.relu(self.bn(self.blocks(x)))))


class Discriminator(nn.Module):
  def __init__(self, in_channels: int, block: ml_collections.ConfigDict):
    super().__init__()
    c, spectral = block.D.channels, block.D.spectral_norm
    self.blocks = nn.Sequential(*[
        DBlock(in_channels if i == 0 else c, c, down, i == 0, spectral)
        for i, down in enumerate(block.D.downsample)])
    self.head = _linear(c, 1, False, spectral)

  def forward(self, images):
    return self.head(F.relu(self.blocks(images)).sum(dim=(2, 3)))[:, 0]


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(G, D) as torch modules, NCHW, for a 'resnet' config."""
  check_reproducible(config)
  block = config.model.resnet
  return (Generator(config.model.latent_dim, block),
          Discriminator(block.G.out_channels, block))


def make_step(config: ml_collections.ConfigDict, generator: nn.Module, discriminator: nn.Module):
  """The alternating hinge step; returns step(real [n_dis * B, 3, H, W] in [-1, 1])."""
  from gan import schedule, state
  total_steps = schedule.total_steps(config)
  updates = {'G': total_steps, 'D': total_steps * config.train.n_dis}

  def adam(module, net):
    o = config.optim[net]
    opt = torch.optim.Adam(module.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2),
                           eps=o.eps)
    decay = ((lambda t: max(0.0, 1 - t / updates[net])) if o.schedule == 'linear'
             else (lambda t: 1.0))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, decay)

  (g_opt, g_sched), (d_opt, d_sched) = adam(generator, 'G'), adam(discriminator, 'D')
  latent, n_dis = config.model.latent_dim, config.train.n_dis
  g_batch = config.train.g_batch_size or config.train.batch_size
  decay = state.ema_decay(config) if state.keeps_g_ema(config) else 0.0
  ema = [p.detach().clone() for p in generator.parameters()] if decay else []
  count = [0]

  def step(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for chunk in real.chunk(n_dis):
      with torch.no_grad():
        fake = generator(torch.randn(chunk.shape[0], latent, device=real.device))
      d_loss = (F.relu(1 - discriminator(chunk)).mean() +
                F.relu(1 + discriminator(fake)).mean())
      d_opt.zero_grad(set_to_none=True)
      d_loss.backward()
      d_opt.step()
      d_sched.step()
    for p in discriminator.parameters():
      p.requires_grad_(False)  # D held fixed: no gradients of its parameters.
    g_loss = -discriminator(generator(torch.randn(g_batch, latent, device=real.device))).mean()
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    g_sched.step()
    for p in discriminator.parameters():
      p.requires_grad_(True)
    if decay:
      t = count[0]
      rate = min(decay, (1 + t) / (10 + t))
      with torch.no_grad():
        for average, p in zip(ema, generator.parameters()):
          average.lerp_(p, 1 - rate)
    count[0] += 1
    return g_loss.detach(), d_loss.detach()

  return step


if __name__ == '__main__':
  torch_dcgan.main(sys.argv[1:], build, make_step)
