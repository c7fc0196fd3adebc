"""GANs on CIFAR-10 in JAX/Flax: models, input pipeline, train step and loop, metrics.

Importing the package sets XLA:CPU flags measured faster for these networks, before JAX
starts its backends: see `gan.cpu_defaults` (GAN_CPU_DEFAULTS=0 opts out).
"""

from gan import cpu_defaults

cpu_defaults.apply_xla_flags()
