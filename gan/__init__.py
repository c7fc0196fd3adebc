"""GANs on CIFAR-10 in JAX/Flax: models, input pipeline, train step and loop, metrics.

Importing the package sets XLA:CPU flags measured faster for these networks before JAX
starts its backends (`gan.xla_cpu`; GAN_XLA_CPU_DEFAULTS=0 opts out).
"""

from gan import xla_cpu

xla_cpu.apply_defaults()
