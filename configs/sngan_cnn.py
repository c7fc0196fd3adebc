r"""SN-GAN's "standard CNN" (Miyato et al. 2018) with the hinge loss: cheap enough for a CPU.

  G: Dense(4*4*512) -> BN -> ReLU -> (ConvT 4x4/2 -> BN -> ReLU) x 3 (256, 128, 64)
     -> Conv 3x3 (3) -> tanh                       (gan/models/sngan_cnn.py)
  D: (Conv 3x3 -> Conv 4x4/2) x 3 (64, 128, 256) -> Conv 3x3 (512), LeakyReLU(0.1)
     after each -> Dense(1); spectral norm on every layer of D

The hinge loss, Adam(2e-4, beta1 0.5, beta2 0.999) for both, one D update per G update
(the paper's setting C, the one public re-runs use for this design), batch 64, z ~ N(0, I)
in 128 dimensions, PyTorch's BatchNorm (momentum 0.1, epsilon 1e-5), an EMA of G
(10 kimg half-life), 50k G updates (about 64 epochs).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/sngan_cnn.py --workdir runs/sngan_cnn
  python train.py --config configs/sngan_cnn.py:smoke --workdir /tmp/smoke   # CPU, seconds
  python train.py --config configs/sngan_cnn.py:diffaug --workdir runs/sngan_cnn_diffaug

`diffaug` adds DiffAugment (color, translation, cutout) to everything D sees.

Expect: public re-runs of this design report FID ~25-30 (50k samples against train) after
its 50k G updates, hours on a GPU; on a 2-core CPU about 150 img/s (docs/results.md holds
what 20 minutes of it reach).
"""

import ml_collections

from configs import baseline, improvements

VARIANTS = {'diffaug': improvements.add_diffaugment}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the SN-GAN standard-CNN config; `variant`: 'diffaug' and/or 'smoke'."""
  config = baseline.get_config()
  config.model.name = 'sngan_cnn'
  config.model.latent_dim = 128
  del config.model['dcgan']
  config.model.sngan_cnn = block = ml_collections.ConfigDict()
  block.bn_momentum = 0.9   # PyTorch's BatchNorm2d(momentum=0.1): running = 0.9 running + 0.1 batch.
  block.bn_epsilon = 1e-5
  # The strided layers' CPU rewrites, as in the DCGAN family (configs/baseline.py).
  block.conv_transpose_impl = 'subpixel'
  block.strided_conv_impl = 'subpixel_grad'
  block.winograd = True
  block.G = ml_collections.ConfigDict()
  block.G.base_channels = 512          # The 4x4 seed's channels.
  block.G.channels = (256, 128, 64)    # ConvT 4x4/2 widths, each doubling the size.
  block.G.out_channels = 3
  block.G.spectral_norm = False
  block.D = ml_collections.ConfigDict()
  block.D.channels = (64, 128, 256)    # Each: Conv 3x3, then Conv 4x4/2 halving the size.
  block.D.top_channels = 512           # The last Conv 3x3, on 4x4.
  block.D.leaky_slope = 0.1
  block.D.spectral_norm = True

  config.loss.name = 'hinge'
  improvements.set_adam(config, 2e-4, b1=0.5, b2=0.999)
  config.train.batch_size = 64
  config.train.update_rule = 'alternating'
  config.train.num_epochs = 64   # 781 steps an epoch: 50k G updates.
  improvements.add_g_ema(config)
  config.train.log_every_steps = 100
  config.eval.samples_every = '2 epochs'
  return baseline.apply_variants(config, variant, VARIANTS)
