r"""BigGAN for CIFAR-10 (Brock et al. 2019), as BigGAN-PyTorch's CIFAR-10 script trains it.

Reference: ajbrock/BigGAN-PyTorch `scripts/launch_cifar_ema.sh` (commit 98459431) with the
defaults of its `utils.py` parser, `BigGAN.py` (G_arch/D_arch at 32) and `layers.py` (ccbn);
the `diffaug` variant follows mit-han-lab/data-efficient-gans
`DiffAugment-biggan-cifar/scripts/DiffAugment-biggan-cifar10.sh`.

  G: z (128) -> SN Dense(4*4*256) -> 3 up-blocks of 256 channels whose BatchNorms take
     per-class gains 1 + embed(y) and biases embed(y) (--G_shared off: no shared embedding,
     all of z into the Dense layer, --hier off) -> BN -> ReLU -> SN Conv 3x3 -> tanh;
     spectral norm on every layer of G
  D: 4 blocks of 256 channels (D_ch 64, wide; the first two downsampling), ReLU, global
     sum pooling, SN Dense(1) plus the projection onto an SN class embedding
  Every kernel and class table drawn from N(0, 0.02) (--G_init N02 --D_init N02).

Hinge loss; 4 D updates per G update (alternating), batches of 50 for both; Adam(2e-4,
beta1 0, beta2 0.999, eps 1e-8) for both, constant; PyTorch's BatchNorm (momentum 0.1,
epsilon 1e-5); an EMA of G at 0.9999 a step, a copy of G for the first 1,000 steps
(--ema_start 1000), for samples and metrics; no augmentation; 500 epochs (125k G updates).
BigGAN-PyTorch samples its CIFAR G_ema in train mode (no --G_eval_mode); here every design
is sampled by one protocol (`eval.g_statistics`, standing statistics by default).

Variants, `diffaug` (DiffAugment's BigGAN CIFAR-10 script: DiffAugment translation and
cutout on everything D sees, real images mirrored at random, 1000 epochs) and `hier`
(BigGAN's ImageNet-scale conditioning, not its CIFAR script's: a shared 128-d class
embedding joined to chunks of z for every block, hierarchical z, orthogonal kernels).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/biggan_cifar.py --workdir runs/biggan \
      --config.model.compute_dtype=bfloat16                                    # a GPU
  python train.py --config configs/biggan_cifar.py:smoke --workdir /tmp/smoke

Expect: BigGAN-PyTorch reports FID ~9 on CIFAR-10 and DiffAugment's script FID ~8.5 with
all the data (their Inception, against the test set in DiffAugment's case), after 125k and
250k G updates: hours on a GPU; the CPU runs its smoke config and tests only.
"""

import ml_collections

from configs import baseline, improvements, sngan_projection

# DiffAugment's policy in its BigGAN CIFAR-10 scripts.
BIGGAN_POLICY = 'translation,cutout'


def add_diffaugment(config: ml_collections.ConfigDict) -> None:
  """DiffAugment-biggan-cifar10.sh: --DiffAugment translation,cutout --mirror_augment,
  1000 epochs (its multi-epoch sampler's 250k G updates)."""
  improvements.add_diffaugment(config, BIGGAN_POLICY)
  config.data.random_flip = True
  config.train.num_epochs = 1000


def add_hierarchical(config: ml_collections.ConfigDict) -> None:
  """BigGAN's conditioning at ImageNet scale (the paper's Sec. 3, App. B): a shared class
  embedding (128) joined to one of 4 chunks of z for each block's BatchNorm gains and
  biases (the first chunk feeds the Dense layer), and orthogonal kernels."""
  config.model.resnet.G.shared_dim = 128
  config.model.resnet.weight_init = 'orthogonal'


VARIANTS = {'diffaug': add_diffaugment, 'hier': add_hierarchical}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the BigGAN CIFAR-10 config; `variant`: 'diffaug', 'hier' and/or 'smoke'."""
  config = sngan_projection.get_config()
  block = config.model.resnet
  block.bn_epsilon = 1e-5      # --BN_eps; momentum 0.1 (bn_momentum 0.9) is hard-coded there.
  block.weight_init = 'normal02'
  block.G.spectral_norm = True
  block.D.channels = 256       # 4 * D_ch, D_wide.
  improvements.set_adam(config, 2e-4, b1=0.0, b2=0.999)
  config.train.batch_size = 50
  config.train.g_batch_size = 0   # G's batch is D's.
  config.train.n_dis = 4
  config.train.num_epochs = 500   # 250 G updates an epoch (4 x 50 real images each).
  config.train.g_ema_decay = 0.9999
  config.train.g_ema_start_step = 1000
  config.eval.samples_every = '10 epochs'
  return baseline.apply_variants(config, variant, VARIANTS)
