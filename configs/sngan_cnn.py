r"""SN-GAN's "standard CNN" (Miyato et al. 2018) with the hinge loss.

Reference: Miyato et al. 2018, "Spectral Normalization for GANs", Table 3 (the networks,
LeakyReLU 0.1), Table 1 setting C (the optimiser, n_dis), Table 2 and Sec. 4.1 (the hinge
loss, 100k G updates); pfnet-research/chainer-gan-lib `example.sh` and `common/net.py`
(batch 64, Chainer's BatchNorm: decay 0.9, epsilon 2e-5; G updated against the D of the
previous update, no EMA).

  G: Dense(4*4*512) -> BN -> ReLU -> (ConvT 4x4/2 -> BN -> ReLU) x 3 (256, 128, 64)
     -> Conv 3x3 (3) -> tanh                       (gan/models/sngan_cnn.py)
  D: (Conv 3x3 -> Conv 4x4/2) x 3 (64, 128, 256) -> Conv 3x3 (512), LeakyReLU(0.1)
     after each -> Dense(1); spectral norm on every layer of D

The hinge loss, Adam(2e-4, beta1 0.5, beta2 0.999) for both, one D update per G update,
alternating (setting C, the one chainer-gan-lib runs), batch 64, z ~ N(0, I) in 128
dimensions, Chainer's BatchNorm (running = 0.9 running + 0.1 batch, epsilon 2e-5), 100k G
updates (128 epochs), every kernel drawn from N(0, 0.02) (chainer-gan-lib's and
compare_gan's SNDCGAN).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/sngan_cnn.py --workdir runs/sngan_cnn
  python train.py --config configs/sngan_cnn.py:smoke --workdir /tmp/smoke   # CPU, seconds
  python train.py --config configs/sngan_cnn.py:diffaug --workdir runs/sngan_cnn_diffaug

Variants, not in the reference: `ema` samples an EMA of G (10 kimg half-life,
StyleGAN2-ADA's); `diffaug` adds DiffAugment (color, translation, cutout) to everything D
sees.

Expect: the paper reports FID 25.5 (hinge; 10k samples against 5k real) after 100k G
updates and chainer-gan-lib FID 23.6 (non-saturating loss), hours on a GPU; on a 2-core
CPU about 35 img/s.
"""

import ml_collections

from configs import baseline, improvements

VARIANTS = {'ema': improvements.add_g_ema, 'diffaug': improvements.add_diffaugment}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the SN-GAN standard-CNN config; `variant`: 'ema', 'diffaug' and/or 'smoke'."""
  config = baseline.get_config()
  config.model.name = 'sngan_cnn'
  config.model.latent_dim = 128
  del config.model['dcgan']
  config.model.sngan_cnn = block = ml_collections.ConfigDict()
  block.bn_momentum = 0.9   # Chainer's BatchNormalization decay: running = 0.9 running + 0.1 batch.
  block.bn_epsilon = 2e-5   # Chainer's default.
  # The strided layers' CPU rewrites, as in the DCGAN family (configs/baseline.py).
  block.conv_transpose_impl = 'subpixel'
  block.strided_conv_impl = 'subpixel_grad'
  block.winograd = True
  block.weight_init = 'normal02'  # chainer-gan-lib's Normal(0.02); or 'glorot' (Keras').
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
  config.train.num_epochs = 128  # 781 steps an epoch: 100k G updates.
  config.train.log_every_steps = 100
  config.eval.samples_every = '2 epochs'
  return baseline.apply_variants(config, variant, VARIANTS)
