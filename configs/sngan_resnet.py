r"""SN-GAN's ResNet G and D (Miyato et al. 2018) with the hinge loss, as its authors train it.

Reference: pfnet-research/sngan_projection `configs/sn_cifar10_unconditional.yml`,
`updater.py`, `gen_models/resnet_32.py`, `dis_models/snresnet_32.py` (the authors' CIFAR-10
code; the paper's Table 2 ResNet row, App. B.2 for the optimiser).

  G: Dense(4*4*256) -> 3 up-blocks of 256 channels -> BN -> ReLU -> Conv 3x3 -> tanh
  D: an optimised block and 3 more of 128 channels (the first two downsampling), ReLU,
     global sum pooling, Dense(1); spectral norm throughout   (gan/models/resnet.py)
                                   4,276,739 and 1,053,824 parameters

Hinge loss; 5 D updates per G update (alternating), D batches of 64 and G batches of
128; Adam(2e-4, beta1 0, beta2 0.9) for both, decayed linearly to 0 over 50k G updates;
z ~ N(0, I) in 128 dimensions; Chainer's BatchNorm in G (decay 0.9, epsilon 2e-5); Xavier
kernels (gain sqrt(2) on the residual convolutions); no EMA of G.

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/sngan_resnet.py --workdir runs/sngan_resnet \
      --config.model.compute_dtype=bfloat16                          # a GPU: hours
  python train.py --config configs/sngan_resnet.py:smoke --workdir /tmp/smoke   # CPU, a minute
  python train.py --config configs/sngan_resnet.py:diffaug --workdir runs/sngan_resnet_diffaug

Variants, not in the reference: `ema` samples an EMA of G (10 kimg half-life,
StyleGAN2-ADA's); `diffaug` adds DiffAugment (color, translation, cutout) to everything D
sees.

Expect: public re-runs report FID 14-17 (50k samples against train) after the 50k G
updates. On a 2-core CPU a G update at n_dis 5 takes tens of seconds (weeks for the
whole run): train it on a GPU; the CPU runs its smoke config and tests.
"""

import ml_collections

from configs import baseline, improvements

VARIANTS = {'ema': improvements.add_g_ema, 'diffaug': improvements.add_diffaugment}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the SN-GAN ResNet config; `variant`: 'ema', 'diffaug' and/or 'smoke'."""
  config = baseline.get_config()
  config.model.name = 'resnet'
  config.model.latent_dim = 128
  del config.model['dcgan']
  config.model.resnet = block = ml_collections.ConfigDict()
  block.bn_momentum = 0.9   # Chainer's BatchNormalization decay (PyTorch's momentum 0.1).
  block.bn_epsilon = 2e-5   # Chainer's default.
  block.winograd = True     # CPU only: 3x3 convolutions by Winograd's F(4x4, 3x3).
  block.weight_init = 'xavier'     # SN-GAN's: Xavier-uniform, gain sqrt(2) on the residual convs.
  block.G = ml_collections.ConfigDict()
  block.G.channels = 256
  block.G.num_blocks = 3    # Each doubles the 4x4 seed: 32x32.
  block.G.out_channels = 3
  block.G.spectral_norm = False
  block.G.shared_dim = 0    # > 0 (conditional): BigGAN's shared embedding, hierarchical z.
  block.D = ml_collections.ConfigDict()
  block.D.channels = 128
  block.D.downsample = (True, True, False, False)  # One entry per block.
  block.D.spectral_norm = True

  config.loss.name = 'hinge'
  improvements.set_adam(config, 2e-4, b1=0.0, b2=0.9, schedule='linear')
  config.train.batch_size = 64
  config.train.g_batch_size = 128
  config.train.n_dis = 5
  config.train.update_rule = 'alternating'
  config.train.num_epochs = 320  # 156 G updates an epoch (5 x 64 real images each): 50k.
  config.train.log_every_steps = 100
  config.eval.samples_every = '10 epochs'
  return baseline.apply_variants(config, variant, VARIANTS)
