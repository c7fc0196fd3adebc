"""The field's improvements over the seed's DCGANs, each a function that edits a config.

They are what the recap ablation adds one at a time (configs/recap.py's variants) and
what the SNGAN configs are built from; each names the paper it comes from.
"""

import ml_collections

# DiffAugment's policy for CIFAR-10 (Zhao et al. 2020, their Table 2's best).
DIFFAUGMENT_POLICY = 'color,translation,cutout'


def add_g_ema(config: ml_collections.ConfigDict, half_life_kimg: float = 10.0) -> None:
  """Samples and metrics from an exponential moving average of G's weights (Karras et al.
  2018; Yazici et al. 2019). StyleGAN2-ADA's 10 kimg half-life: short enough to follow a
  run of a few hundred kimg, long enough to average over the game's oscillation."""
  config.train.g_ema_decay = 0.0
  config.train.g_ema_half_life_kimg = half_life_kimg


def add_spectral_norm_hinge(config: ml_collections.ConfigDict) -> None:
  """Every layer of D spectrally normalised and the hinge loss (Miyato et al. 2018),
  trained as SN-GAN trains: alternating updates, G against the D just updated
  (pfnet-research/sngan_projection updater.py; chainer-gan-lib's SNDCGAN), not the seed's
  simultaneous step. Spectral norm replaces BatchNorm as D's stabiliser: a BatchNorm after
  a normalised layer would rescale away the Lipschitz bound it sets, and SN-GAN's D has
  none. On recap's D this normalises its two 5x5 convolutions and its Dense logit."""
  dcgan = config.model.dcgan
  dcgan.D.spectral_norm = True
  dcgan.D.batch_norm = (False,) * len(dcgan.D.channels)
  config.loss.name = 'hinge'
  config.train.update_rule = 'alternating'


def add_diffaugment(config: ml_collections.ConfigDict,
                    policy: str = DIFFAUGMENT_POLICY) -> None:
  """DiffAugment (Zhao et al. 2020): every image D sees, real and fake, in both networks'
  updates, augmented differentiably, so D cannot memorise the training set."""
  config.augment.policy = policy


def add_conditioning(config: ml_collections.ConfigDict) -> None:
  """Class-conditional G and D: the labels of the real batch go to D, fakes are drawn for
  uniform labels, and each family turns its BatchNorms in G class-conditional (de Vries
  et al. 2017) and adds the projection term <embed(y), h> to D's logit (Miyato & Koyama
  2018), so that a user can ask for a class and the samples show it."""
  config.model.conditional = True
  if 'per_class' not in config.eval.metrics:  # Accuracy per class asked for, intra-FID.
    config.eval.metrics = (*config.eval.metrics, 'per_class')


def add_auxiliary_classifier(config: ml_collections.ConfigDict) -> None:
  """Conditional G, and D with AC-GAN's auxiliary classifier (Odena et al. 2017) in place of
  the projection term: D learns to tell the class of real and fake images, G to make its
  fakes classified as the class asked for (`loss.class_weight`)."""
  add_conditioning(config)
  config.model.class_head = 'acgan'


def set_adam(config: ml_collections.ConfigDict, learning_rate: float, b1: float, b2: float,
             eps: float = 1e-8, schedule: str = 'constant') -> None:
  """The same Adam for G and D, with optax's epsilon (the papers' PyTorch and Chainer
  code use 1e-8; the seed's Keras 1e-7 stays in the seed's configs)."""
  for net in ('G', 'D'):
    config.optim[net].update(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps,
                             schedule=schedule)
