r"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic with a gradient penalty, DCGAN-sized.

Reference: igul222/improved_wgan_training `gan_cifar.py` (commit fa66c574; MODE 'wgan-gp',
DIM 128), the authors' CIFAR-10 script for the DCGAN-architecture networks.

  G: z (128) -> Dense(4*4*512) -> BN -> ReLU -> ConvT 5x5/2 (256) -> BN -> ReLU
     -> ConvT 5x5/2 (128) -> BN -> ReLU -> ConvT 5x5/2 (3) -> tanh
  D: Conv 5x5/2 (128, 256, 512), LeakyReLU(0.2) after each, no normalisation (the penalty
     is per sample, which a batch statistic would couple) -> flatten -> Dense(1), the
     critic's score

Wasserstein loss with the gradient penalty on random real-fake interpolates (lambda 10),
5 critic updates per G update (alternating; each on a fresh real batch), batch 64,
Adam(1e-4, beta1 0.5, beta2 0.9), constant, 200k G updates (1282 epochs). Not the
script's: the DCGAN family's Keras layers (Glorot-uniform kernels; no bias on G's Dense
and transposed convolutions; BatchNorm epsilon 1e-3, momentum 0.99); the script's G
normalises with batch statistics even when sampling (here: one protocol for every design,
`eval.g_statistics`).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/wgan_gp.py --workdir runs/wgan_gp
  python train.py --config configs/wgan_gp.py:smoke --workdir /tmp/smoke   # CPU, seconds

Expect: D's accuracies hover near 0.5 by design (the critic's score has no threshold), its
loss is minus the estimated Wasserstein distance; a GPU run of hours for the full length.
"""

import ml_collections

from configs import baseline, improvements


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the WGAN-GP config; `variant='smoke'` gives a tiny CPU run."""
  config = baseline.get_config()
  config.model.latent_dim = 128
  dcgan = config.model.dcgan
  dcgan.G.base_channels = 512        # 4 * DIM.
  dcgan.G.channels = (256, 128)      # 2 * DIM, DIM.
  dcgan.G.activation = 'relu'
  dcgan.D.channels = (128, 256, 512)  # DIM, 2 * DIM, 4 * DIM.
  dcgan.D.batch_norm = (False,) * len(dcgan.D.channels)
  dcgan.D.leaky_slope = 0.2
  dcgan.D.dropout = 0.0
  config.loss.name = 'wasserstein'
  config.loss.gradient_penalty = 10.0
  improvements.set_adam(config, 1e-4, b1=0.5, b2=0.9)
  config.train.batch_size = 64
  config.train.n_dis = 5
  config.train.update_rule = 'alternating'
  config.train.num_epochs = 1282   # 156 G updates an epoch (5 x 64 real images each): 200k.
  config.train.log_every_steps = 100
  config.eval.samples_every = '10 epochs'
  return baseline.apply_variants(config, variant, {})
