"""GANs on CIFAR-10 in JAX/Flax: model families, input pipeline, train step and loop, metrics.

Importing the package changes nothing in the process: the entry points (train.py and the
`python -m gan.X` commands) apply the CPU runtime settings of `gan.cpu_defaults`
themselves, before JAX starts its backends.
"""
