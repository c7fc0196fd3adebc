r"""SN-GAN with a projection discriminator (Miyato & Koyama 2018): the class-conditional ResNet.

Reference: pfnet-research/sngan_projection `configs/sn_cifar10_conditional.yml` (the
unconditional file with n_classes 10), `gen_models/resblocks.py` and
`source/links/categorical_conditional_batch_normalization.py` (per-class gains and biases
starting at 1 and 0; G's last BatchNorm plain), `dis_models/snresnet_32.py` (the projection
onto a spectrally normalised class embedding).

  G: configs/sngan_resnet.py's G with class-conditional BatchNorm in its blocks (a gain
     and a bias per class; the last BatchNorm stays plain, as in the authors' code)
  D: its D, plus the projection <embed(y), h> of the pooled features h onto a
     spectrally normalised class embedding, added to the logit
                                   (gan/models/resnet.py, gan/models/conditioning.py)

Everything else as configs/sngan_resnet.py: hinge, n_dis 5, D batches of 64 and G
batches of 128, Adam(2e-4, 0, 0.9) decayed linearly to 0 over 50k G updates, no EMA
(variants as there: `ema`, `diffaug`).
The real batch's labels go to D; fakes are drawn for uniform labels (class-balanced in
evaluation); the grids show one row per class.

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/sngan_projection.py --workdir runs/sngan_projection \
      --config.model.compute_dtype=bfloat16                          # a GPU: hours
  python train.py --config configs/sngan_projection.py:smoke --workdir /tmp/smoke
  python -m gan.sample --workdir runs/sngan_projection --class horse

Expect: the paper's CIFAR-10 row and public re-runs report FID 9-11 (50k samples against
train) after the 50k G updates; the CPU runs its smoke config and tests only.
"""

import ml_collections

from configs import baseline, improvements, sngan_resnet

VARIANTS = sngan_resnet.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the SN-GAN projection config; `variant`: 'ema', 'diffaug' and/or 'smoke'."""
  config = sngan_resnet.get_config()
  improvements.add_conditioning(config)
  return baseline.apply_variants(config, variant, VARIANTS)
