r"""The best design this project builds for a CPU budget: recap's generator, SN-GAN's way
of training a discriminator, small batches and an EMA of G.

Not one paper's recipe but the field's parts on recap (configs/recap.py), each cheap on a
CPU, each chosen for what it does in a run of a couple of hours on one core (about
1.2M images, 25 epochs; docs/results.md has the study that measures each part):

  G      recap's: Dense(4*4*256) -> BN -> ReLU -> ConvT 5x5/2 (256, 128) -> ConvT(3) -> tanh,
         the network that reaches FID ~53 in recap's 100 epochs.
  D      three 5x5/2 convolutions (64, 128, 256; recap has the first two) with LeakyReLU(0.2)
         and spectral norm on every layer, no BatchNorm, no dropout (SN-GAN's D, Miyato et al.
         2018, Table 3; spectral norm bounds D's Lipschitz constant, so G's gradients stay
         useful where recap's BatchNorm D lurches). The third layer (13M multiply-adds, a
         tenth of the step) gives D the depth that spectral norm's constraint takes away.
  loss   hinge, alternating updates (G against the updated D), n_dis 1, Adam(2e-4, 0.5,
         0.999) for both: SN-GAN's setting C (Table 1), the fastest of its stable settings.
  batch  64 (SN-GAN's; recap's 256): four times the updates per image at ~85% of the
         throughput, and updates, not images, are what a short run lacks.
  EMA    samples and metrics from an EMA of G, 10 kimg half-life (StyleGAN2-ADA): the
         average of the last ~1,000 updates, smoother than any one of them (Yazici et al.
         2019).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/cpu_dcgan.py --workdir runs/cpu_dcgan \
      --config.train.time_budget_minutes=150
  python train.py --config configs/cpu_dcgan.py:smoke --workdir /tmp/smoke   # CPU, seconds

Variants: `conditional` is the conditional twin (class-conditional BatchNorm in G, a
projection term in D; ask for a class); each `no_*` removes one part, for the ablation:

  no_ema       samples the last G
  no_sn_hinge  D with recap's BatchNorm (after its later convolutions) instead of spectral
               norm, recap's non-saturating loss and simultaneous update
  batch256     recap's batch of 256
  shallow_d    recap's two-layer D (64, 128)
  diffaug      adds DiffAugment (color, translation, cutout) to everything D sees
"""

import ml_collections

from configs import baseline, improvements, recap


def remove_ema(config: ml_collections.ConfigDict) -> None:
  config.train.g_ema_half_life_kimg = 0.0


def remove_spectral_norm_hinge(config: ml_collections.ConfigDict) -> None:
  """Recap's D treatment: BatchNorm after every convolution but the first, the
  non-saturating loss, G and D updated simultaneously."""
  d = config.model.dcgan.D
  d.spectral_norm = False
  d.batch_norm = (False,) + (True,) * (len(d.channels) - 1)
  config.loss.name = 'non_saturating'
  config.train.update_rule = 'simultaneous'


def use_batch_256(config: ml_collections.ConfigDict) -> None:
  config.train.batch_size = 256


def use_shallow_d(config: ml_collections.ConfigDict) -> None:
  d = config.model.dcgan.D
  d.channels = (64, 128)
  d.batch_norm = d.batch_norm[:2]


VARIANTS = {
    'conditional': improvements.add_conditioning,
    'no_ema': remove_ema,
    'no_sn_hinge': remove_spectral_norm_hinge,
    'batch256': use_batch_256,
    'shallow_d': use_shallow_d,
    'diffaug': improvements.add_diffaugment,
}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the CPU-budget design; `variant`: comma-separated names of VARIANTS and
  'smoke'."""
  config = recap.get_config()
  d = config.model.dcgan.D
  d.channels = (64, 128, 256)
  improvements.add_spectral_norm_hinge(config)  # Also: no BatchNorm, alternating updates.
  config.train.batch_size = 64
  improvements.add_g_ema(config)
  config.train.log_every_steps = 100
  return baseline.apply_variants(config, variant, VARIANTS)
