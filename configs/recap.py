r"""The course project's improved ("recap") DCGAN: the baseline with the seed's changes.

Reference: the course notebook's STEP 8, CAVASOL/aiffel_quest
`Exploration_quest/exploration_4/xp4_project.ipynb` (commit cc2eb147): cells 69 (G), 77
(D), 84 (Adam(2e-4, beta_1 0.5), constant: the "learning rate decay" its text names is
not in its code), 91 (100 epochs); everything else as the initial design's cells.

  G: Dense(4*4*256, no bias) -> BN -> ReLU -> ConvT(256) -> BN -> ReLU -> ConvT(128)
     -> BN -> ReLU -> ConvT(3) -> tanh          (2,885,760 trainable + 8,960 BN statistics)
  D: Conv(64) -> LeakyReLU(0.2) -> Conv(128) -> BN -> LeakyReLU(0.2) -> flatten -> Dense(1)
                                                (218,241 trainable + 256 BN statistics)
  Adam(2e-4, beta1 0.5) for both, 100 epochs; everything else as in configs/baseline.py.

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/recap.py --workdir runs/recap
  python train.py --config configs/recap.py:smoke --workdir /tmp/smoke   # CPU, seconds

Variants add the field's improvements one at a time (configs/improvements.py; none is in
the course's notebook), for the ablation of docs/results.md; each combines with smoke
('ema,smoke'):

  ema       samples and metrics from an EMA of G (10 kimg half-life, StyleGAN2-ADA's)
  sn_hinge  spectral norm on every layer of recap's D (replacing its BatchNorm), the hinge
            loss and SN-GAN's alternating update (G against the updated D)
  diffaug   DiffAugment color,translation,cutout on everything D sees
  all       the three together
  conditional  class-conditional BatchNorm in G and a projection head in D: ask for a
            class ('diffaug,conditional' is the conditional twin of 'diffaug')
  acgan     conditional, with AC-GAN's auxiliary classifier in D instead of the projection

  python train.py --config configs/recap.py:all --workdir runs/recap_all \
      --config.train.time_budget_minutes=20

Expect: on a 2-core CPU about 1.8 min an epoch; on one H200 GPU with
--config.model.compute_dtype=bfloat16 --config.train.steps_per_call=65 all 100 epochs in
about a minute, reaching FID ~53 (10,000 samples against the train set, sampled with G's
running statistics; docs/results.md).
"""

import ml_collections

from configs import baseline, improvements

VARIANTS = {
    'ema': improvements.add_g_ema,
    'sn_hinge': improvements.add_spectral_norm_hinge,
    'diffaug': improvements.add_diffaugment,
    'all': lambda config: [add(config) for add in (improvements.add_g_ema,
                                                   improvements.add_spectral_norm_hinge,
                                                   improvements.add_diffaugment)],
    'conditional': improvements.add_conditioning,
    'acgan': improvements.add_auxiliary_classifier,
}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the recap config; `variant`: comma-separated names of VARIANTS and
  'smoke' (a tiny CPU run)."""
  config = baseline.get_config()
  # G: wider first ConvTranspose (the DCGAN paper halves channels per layer from the
  # dense block) and ReLU, as Radford et al. use in the generator.
  dcgan = config.model.dcgan
  dcgan.G.channels = (256, 128)
  dcgan.G.activation = 'relu'
  # D: LeakyReLU(0.2) as in DCGAN; BatchNorm on the second convolution replaces dropout
  # as the stabiliser.
  dcgan.D.leaky_slope = 0.2
  dcgan.D.dropout = 0.0
  dcgan.D.batch_norm = (False, True)
  # DCGAN's optimiser: a larger step, and beta1 = 0.5 damps the momentum that makes the
  # adversarial game oscillate.
  for net in ('G', 'D'):
    config.optim[net].learning_rate = 2e-4
    config.optim[net].b1 = 0.5
  # The seed trains the improved design half as long.
  config.train.num_epochs = 100

  return baseline.apply_variants(config, variant, VARIANTS)
