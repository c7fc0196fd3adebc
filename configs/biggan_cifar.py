r"""The flagship: a BigGAN for CIFAR-10 (Brock et al. 2019) with DiffAugment (Zhao et al. 2020).

  G: configs/sngan_projection.py's G with BigGAN's conditioning: a shared class embedding
     (128) joined to one of 4 chunks of z (128 = 4 x 32; the first feeds the Dense layer)
     gives every block's BatchNorm gains and biases through linear maps; spectral norm on
     every layer of G too
  D: the projection D, 256 channels wide (BigGAN's 4 * ch with ch = 64)
  Orthogonal initialisation of every kernel in both networks.

Hinge loss; 4 D updates per G update, batches of 50 for both; Adam(2e-4, 0, 0.999) for
both, constant (BigGAN-PyTorch's CIFAR-10 recipe); an EMA of G for samples and metrics
(10 kimg half-life: BigGAN's 0.9999 a step averages over ~350 kimg, more than a budgeted
run sees); DiffAugment translation and cutout on everything D sees (the policy
DiffAugment's BigGAN CIFAR-10 runs use).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/biggan_cifar.py --workdir runs/biggan \
      --config.model.compute_dtype=bfloat16 --config.train.time_budget_minutes=10   # a GPU
  python train.py --config configs/biggan_cifar.py:smoke --workdir /tmp/smoke

Expect: public BigGAN re-runs report FID ~9 on CIFAR-10 and DiffAugment's ~8.5 with all the
data (50k samples against train, hundreds of thousands of G updates on a GPU); the CPU runs
its smoke config and tests only.
"""

import ml_collections

from configs import baseline, improvements, sngan_projection

BIGGAN_POLICY = 'translation,cutout'


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the BigGAN CIFAR-10 config; `variant`: 'smoke'."""
  config = sngan_projection.get_config()
  block = config.model.resnet
  block.weight_init = 'orthogonal'
  block.G.shared_dim = 128
  block.G.spectral_norm = True
  block.D.channels = 256
  improvements.set_adam(config, 2e-4, b1=0.0, b2=0.999)
  config.train.batch_size = 50
  config.train.g_batch_size = 0   # G's batch is D's.
  config.train.n_dis = 4
  config.train.num_epochs = 500
  improvements.add_diffaugment(config, BIGGAN_POLICY)
  return baseline.apply_variants(config, variant, {})
