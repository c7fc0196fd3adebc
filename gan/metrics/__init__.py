"""Sample-quality metrics by name, selected in `config.eval.metrics`.

A metric is one module here registering a factory:

  @metrics.register('fid')
  def make(context: Context) -> Callable[[Samples], dict]: ...

The factory runs once per evaluator (load weights, reference statistics); the function
it returns turns a set of samples into a record of 'eval/<name>' numbers. What several
metrics share is computed once: the reference split's Inception statistics on the
`Context`, the samples' Inception features on the `Samples`.
"""

# The built-in metrics register on import (cheaply: weights load in their factories).
from gan.metrics import fid, inception_score, kid, per_class, recognisability  # noqa: F401
from gan.metrics.registry import (INCEPTION_LOGITS_ENV, METRICS, Context, Metric, Samples,
                                  make_metrics, register)

__all__ = ['INCEPTION_LOGITS_ENV', 'METRICS', 'Context', 'Metric', 'Samples', 'make_metrics',
           'register']
