r"""WGAN-GP (Gulrajani et al. 2017) on the recap DCGAN: a Wasserstein critic with a gradient penalty.

  G: the recap generator (configs/recap.py).
  D: the recap discriminator without BatchNorm (the penalty is per sample, which a
     batch statistic would couple), its logit the critic's score.

Wasserstein loss with the gradient penalty on random real-fake interpolates (lambda 10),
5 critic updates per G update (alternating), batch 64, Adam(1e-4, beta1 0.5, beta2 0.9)
(the paper's DCGAN-architecture CIFAR-10 setting), 100 epochs (15.6k G updates).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/wgan_gp.py --workdir runs/wgan_gp
  python train.py --config configs/wgan_gp.py:smoke --workdir /tmp/smoke   # CPU, seconds

Expect: public re-runs of WGAN-GP reach FID 17-22 with the ResNet and ~30-40 with
DCGAN-sized networks after 100k G updates; D's accuracies hover near 0.5 by design (the
critic's score has no threshold), its loss is minus the estimated Wasserstein distance.
"""

import ml_collections

from configs import baseline, improvements, recap


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the WGAN-GP config; `variant='smoke'` gives a tiny CPU run."""
  config = recap.get_config()
  dcgan = config.model.dcgan
  dcgan.D.batch_norm = (False,) * len(dcgan.D.channels)
  config.loss.name = 'wasserstein'
  config.loss.gradient_penalty = 10.0
  improvements.set_adam(config, 1e-4, b1=0.5, b2=0.9)
  config.train.batch_size = 64
  config.train.n_dis = 5
  config.train.update_rule = 'alternating'
  config.train.num_epochs = 100
  return baseline.apply_variants(config, variant, {})
