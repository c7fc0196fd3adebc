"""Per-class proof for a conditional G: is a sample asked for class c a c?

  - `class_accuracy`: how often the project's CIFAR-10 classifier (the person's stand-in,
    `gan.metrics.classifier`) names the class the sample was asked for; chance is
    1 / classes. Also per class, and the confusion matrix (rows: asked, columns: seen).
  - `intra_fid`: FID of the samples of each class against the reference split's images of
    that class (Miyato & Koyama 2018's intra-FID), averaged over the classes. The
    reference side is the split's first `fid.KID_FEATURES` images (all of the test split;
    ~1,000 a class of train), whose features the FID statistics cache already holds. With
    a few hundred samples a class it is biased upwards like any small-sample FID: compare
    it at equal sample counts only.

Needs the labels the samples were asked for: a conditional run (`model.conditional`).
"""

import numpy as np

from gan.metrics import fid, registry


def confusion_matrix(asked: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
  """int64 [classes, classes]: entry (a, p) counts samples asked for a and classified p."""
  return np.bincount(np.asarray(asked) * num_classes + np.asarray(predicted),
                     minlength=num_classes ** 2).reshape(num_classes, num_classes)


def class_accuracies(confusion: np.ndarray) -> np.ndarray:
  """Per asked class, the share classified as it (NaN for a class never asked)."""
  asked = confusion.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.diag(confusion) / asked


def intra_fids(features: np.ndarray, labels: np.ndarray, reference_features: np.ndarray,
               reference_labels: np.ndarray, num_classes: int) -> list[float]:
  """FID of each class's sample features against that class's reference features."""
  out = []
  for c in range(num_classes):
    mine, theirs = features[labels == c], reference_features[reference_labels == c]
    if len(mine) < 2 or len(theirs) < 2:
      raise ValueError(f'intra-FID of class {c}: {len(mine)} samples and {len(theirs)} '
                       f'reference images; need at least 2 of each (more samples).')
    out.append(fid.frechet_distance(*fid.feature_stats(mine), *fid.feature_stats(theirs)))
  return out


@registry.register('per_class')
def make(context: registry.Context) -> registry.Metric:
  context.recogniser  # Loads the classifier's weights now, not at the first evaluation.

  def per_class_of(samples: registry.Samples) -> dict:
    if samples.labels is None:
      raise ValueError("Metric 'per_class' needs a conditional run (model.conditional=True): "
                       "an unconditional G's samples were asked for no class.")
    probabilities = samples.class_probabilities
    num_classes = probabilities.shape[-1]
    confusion = confusion_matrix(samples.labels, probabilities.argmax(-1), num_classes)
    _, _, reference_features = context.reference_stats
    reference_labels = context.reference_data[1][:len(reference_features)]
    per_class_fid = intra_fids(samples.features, samples.labels, reference_features,
                               reference_labels, num_classes)
    return {'eval/class_accuracy': float(np.trace(confusion) / confusion.sum()),
            'eval/class_accuracy_per_class': [float(a) for a in class_accuracies(confusion)],
            'eval/confusion': confusion.tolist(),
            'eval/intra_fid': float(np.mean(per_class_fid)),
            'eval/intra_fid_per_class': per_class_fid}

  return per_class_of
