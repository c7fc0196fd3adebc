r"""A CIFAR-10 classifier trained by the project: what the recognisability metric asks.

  python -m gan.metrics.classifier train [--epochs 12] [--batch_size 512] [--out PATH]
  python -m gan.metrics.classifier eval [--weights PATH]
  python -m gan.metrics.classifier calibrate [--weights PATH]

The course project's first criterion is that "a person can tell which kind of object each
image shows". This classifier stands in for the person: a sample counts as recognisable when
the classifier gives one class probability >= 0.9 (`gan.metrics.recognisability`), its
probabilities calibrated by a temperature fitted on CIFAR-10 test (`fit_temperature`).
Reported with it: the class histogram of the samples and its entropy, a coverage check (a
G that draws only horses can be very recognisable).

The network is small on purpose (3 conv blocks, ~1.2M parameters, stored in float16 below
4 MB in the package) so that it trains on a laptop CPU. Its recipe follows the
fast-CIFAR-10 literature (Page's ResNet-9 series, Keller Jordan's airbench): conv -> max
pool -> BN -> GELU blocks, logits scaled down, label smoothing, Nesterov SGD with a
triangular learning-rate schedule, flip + 2-pixel translation augmentation, and the
prediction averaged over the image and its mirror image. The shipped weights' test accuracy
and the command that made them are in `classifier_weights.json` next to them.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from gan import data, parallel

CLASSES = data.DATASETS['cifar10'].class_names
WEIGHTS = Path(__file__).with_name('classifier_weights.npz')
# CIFAR-10 train-split channel mean and standard deviation, in [0, 255] units.
_MEAN = np.array([125.31, 122.95, 113.87], np.float32)
_STD = np.array([62.99, 62.09, 66.70], np.float32)


def _max_pool2(x: jax.Array) -> jax.Array:
  # A reshape + max instead of nn.max_pool: its gradient is an elementwise mask rather
  # than XLA's select-and-scatter, which is slow on CPU.
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Classifier(nn.Module):
  """Optional stem conv, then blocks of conv -> pool -> BN -> GELU -> conv -> BN -> GELU."""
  stem: int = 0  # Width of a conv before the blocks (0: none; slower, docs/performance.md).
  widths: tuple[int, ...] = (64, 128, 256)
  num_classes: int = 10
  logit_scale: float = 0.125  # Small initial logits keep the high learning rate stable.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """uint8 or float [N, 32, 32, 3] in [0, 255] -> logits [N, num_classes]."""
    x = (jnp.asarray(images, jnp.float32) - _MEAN) / _STD
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
    conv = lambda width: nn.Conv(width, (3, 3), padding='SAME', use_bias=False)
    if self.stem:
      x = nn.gelu(norm()(conv(self.stem)(x)))
    for width in self.widths:
      x = nn.gelu(norm()(_max_pool2(conv(width)(x))))
      x = nn.gelu(norm()(conv(width)(x)))
    x = x.max(axis=(1, 2))
    return nn.Dense(self.num_classes, use_bias=False)(x) * self.logit_scale


def augment(key: jax.Array, images: jax.Array, max_shift: int = 2) -> jax.Array:
  """Random horizontal flip and translation by up to `max_shift` pixels (reflected edges)."""
  n, h, w, _ = images.shape
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
  images = jnp.where(flip, images[:, :, ::-1], images)
  padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), mode='reflect')
  shifts = jax.random.randint(shift_key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda image, shift: jax.lax.dynamic_slice(image, (shift[0], shift[1], 0), (h, w, 3))
  return jax.vmap(crop)(padded, shifts)


def predict_logits(model: Classifier, variables, images: jax.Array) -> jax.Array:
  """Logits averaged over the image and its mirror image (test-time augmentation)."""
  return (model.apply(variables, images) + model.apply(variables, images[:, :, ::-1])) / 2


def make_train_step(model: Classifier, tx: optax.GradientTransformation,
                    label_smoothing: float):
  """A jitted (params, batch_stats, opt_state, key, images, labels) -> (..., loss) step."""

  def loss_fn(params, batch_stats, images, labels):
    logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, images,
                                  train=True, mutable=['batch_stats'])
    targets = optax.smooth_labels(jax.nn.one_hot(labels, model.num_classes), label_smoothing)
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    return loss, updates['batch_stats']

  @jax.jit
  def step(params, batch_stats, opt_state, key, images, labels):
    images = augment(key, images)
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, images, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  return step


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
  """The T minimising the NLL of softmax(logits / T) (Guo et al. 2017).

  Label smoothing trains the network to give the true class ~0.82, never 0.9, so its raw
  probabilities would make "probability >= 0.9" unreachable; after scaling, a probability
  means about that accuracy. Dividing by T changes no prediction. The NLL is convex in
  1 / T, so a golden-section search over it finds the minimum.
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels)

  def nll(inverse):
    scaled = logits * inverse
    top = scaled.max(-1)
    log_z = top + np.log(np.exp(scaled - top[:, None]).sum(-1))
    return float((log_z - scaled[np.arange(len(labels)), labels]).mean())

  low, high = 1e-3, 100.0
  ratio = (np.sqrt(5) - 1) / 2
  for _ in range(100):
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    if nll(a) < nll(b):
      high = b
    else:
      low = a
  return float(2 / (low + high))


def train(epochs: int = 12, batch_size: int = 512, learning_rate: float = 0.4,
          weight_decay: float = 5e-4, label_smoothing: float = 0.2, seed: int = 0,
          data_dir: str = '', num_examples: int = 0) -> tuple[Classifier, dict, dict]:
  """Trains on CIFAR-10 train; returns (model, variables, record with test accuracy)."""
  images, labels = data.load_split('train', data_dir, num_examples)
  test_images, test_labels = data.load_split('test', data_dir)
  steps_per_epoch = len(images) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'batch_size {batch_size} is larger than the {len(images)} training images.')
  total = epochs * steps_per_epoch
  # Linear warm-up over the first fifth, then linear decay to zero.
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, total // 5),
       optax.linear_schedule(learning_rate, 0.0, total - total // 5)], [total // 5])
  tx = optax.chain(optax.add_decayed_weights(weight_decay),
                   optax.sgd(schedule, momentum=0.9, nesterov=True))
  model = Classifier()
  init_key, train_key = jax.random.split(jax.random.key(seed))
  variables = model.init(init_key, jnp.zeros((1, 32, 32, 3), jnp.uint8))
  params, batch_stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)
  step = make_train_step(model, tx, label_smoothing)
  start = time.time()
  for epoch in range(epochs):
    order = data.epoch_permutation(seed, epoch, len(images))
    bar = tqdm.trange(steps_per_epoch, desc=f'epoch {epoch + 1}/{epochs}', file=sys.stdout)
    for i in bar:
      index = order[i * batch_size:(i + 1) * batch_size]
      key = jax.random.fold_in(train_key, epoch * steps_per_epoch + i)
      params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, key,
                                                  images[index], labels[index])
      if i % 20 == 0:
        loss = float(loss)
        if not np.isfinite(loss):
          raise FloatingPointError(f'Classifier loss is {loss} at epoch {epoch}, step {i}.')
        bar.set_postfix(loss=f'{loss:.3f}')
  variables = {'params': params, 'batch_stats': batch_stats}
  # Rounded to float16 as shipped, so that the accuracy reported is the shipped weights'.
  variables = jax.tree.map(lambda x: np.asarray(x, np.float16).astype(np.float32), variables)
  record = {**evaluate_on(model, variables, test_images, test_labels),
            'epochs': epochs, 'batch_size': batch_size, 'learning_rate': learning_rate,
            'weight_decay': weight_decay, 'label_smoothing': label_smoothing, 'seed': seed,
            'train_seconds': round(time.time() - start, 1), 'device': str(jax.devices()[0]),
            'jax': jax.__version__,
            'parameters': sum(x.size for x in jax.tree.leaves(variables['params']))}
  return model, variables, record


def evaluate_on(model: Classifier, variables, images: np.ndarray, labels: np.ndarray) -> dict:
  """Accuracy, the fitted temperature, and the recognisability of these real images.

  The temperature is fitted on the same labelled images (CIFAR-10 test): it changes no
  prediction, so the accuracy stays a test accuracy; the real images' recognisable share,
  measured with it, is the anchor that generated images are compared with.
  """
  from gan.metrics.recognisability import recognisability
  logits = Recogniser(model, variables).logits(images)
  temperature = fit_temperature(logits, labels)
  probs = softmax(logits, temperature)
  return {'test_accuracy': float((probs.argmax(-1) == labels).mean()), 'temperature': temperature,
          **{f'test_{k}': v for k, v in recognisability(probs).items()}}


def save(variables: dict, record: dict, path: Path) -> None:
  flat = traverse_util.flatten_dict(variables, sep='/')
  np.savez_compressed(path, **{name: np.asarray(leaf, np.float16) for name, leaf in flat.items()})
  path.with_suffix('.json').write_text(json.dumps(record, indent=2) + '\n')


def load(path: Path = WEIGHTS) -> dict:
  """The variables saved by `save` (float16 on disk, float32 here)."""
  if not Path(path).exists():
    raise FileNotFoundError(f'No classifier weights at {path}; train them with '
                            '`python -m gan.metrics.classifier train --out PATH`.')
  with np.load(path) as arrays:
    return traverse_util.unflatten_dict({name: arrays[name].astype(np.float32)
                                         for name in arrays.files}, sep='/')


def shipped_temperature(path: Path = WEIGHTS) -> float:
  return json.loads(Path(path).with_suffix('.json').read_text())['temperature']


class Recogniser:
  """Class probabilities of uint8 images, jitted once: by default from the shipped
  classifier and its calibration temperature."""

  def __init__(self, model: Classifier | None = None, variables: dict | None = None,
               batch_size: int = 500, temperature: float | None = None):
    self._model = model or Classifier()
    if variables is None:
      variables = load()
      temperature = shipped_temperature() if temperature is None else temperature
    self.temperature = 1.0 if temperature is None else temperature
    # Each batch split over every device (all hosts' in a multi-host run).
    self._logits = parallel.OverMesh(
        lambda v, x: predict_logits(self._model, v, x).astype(jnp.float32))
    self.batch_size = self._logits.batch_size(batch_size)
    self._variables = self._logits.put(variables)

  def logits(self, images: np.ndarray) -> np.ndarray:
    """Flip-averaged logits [N, 10], before the temperature."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3):
      raise ValueError(f'Expected uint8 images [N, 32, 32, 3], got {images.dtype} {images.shape}.')
    batch = self.batch_size
    padded = np.concatenate([images, np.zeros((-len(images) % batch, 32, 32, 3), np.uint8)])
    out = [self._logits(self._variables, padded[i:i + batch])
           for i in range(0, len(padded), batch)]
    return np.concatenate(out)[:len(images)]

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    return softmax(self.logits(images), self.temperature)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """softmax(logits / temperature) in float64."""
  scaled = np.asarray(logits, np.float64) / temperature
  probs = np.exp(scaled - scaled.max(-1, keepdims=True))
  return probs / probs.sum(-1, keepdims=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)
  train_parser = sub.add_parser('train', help='train on CIFAR-10 train, report test accuracy')
  train_parser.add_argument('--epochs', type=int, default=12)
  train_parser.add_argument('--batch_size', type=int, default=512)
  train_parser.add_argument('--learning_rate', type=float, default=0.4)
  train_parser.add_argument('--seed', type=int, default=0)
  train_parser.add_argument('--data_dir', default='', help="'' reads $GAN_CIFAR10_DIR or TFDS")
  train_parser.add_argument('--out', type=Path, default=WEIGHTS)
  eval_parser = sub.add_parser('eval', help='test accuracy and recognisability of CIFAR-10 test')
  eval_parser.add_argument('--weights', type=Path, default=WEIGHTS)
  eval_parser.add_argument('--data_dir', default='')
  calibrate_parser = sub.add_parser(
      'calibrate', help='fit the temperature of saved weights on CIFAR-10 test, update the '
      'record beside them (train does this itself)')
  calibrate_parser.add_argument('--weights', type=Path, default=WEIGHTS)
  calibrate_parser.add_argument('--data_dir', default='')
  args = parser.parse_args(argv)
  from gan.metrics.recognisability import recognisability
  if args.command == 'train':
    _, variables, record = train(args.epochs, args.batch_size, args.learning_rate,
                                 seed=args.seed, data_dir=args.data_dir)
    record['command'] = 'python -m gan.metrics.classifier ' + ' '.join(sys.argv[1:] if argv is None else argv)
    save(variables, record, args.out)
    print(f'test accuracy {record["test_accuracy"]:.4f}; weights in {args.out}')
  elif args.command == 'calibrate':
    images, labels = data.load_split('test', args.data_dir)
    record_path = args.weights.with_suffix('.json')
    record = json.loads(record_path.read_text())
    record.update(evaluate_on(Classifier(), load(args.weights), images, labels))
    record['calibrate_command'] = 'python -m gan.metrics.classifier calibrate'
    record_path.write_text(json.dumps(record, indent=2) + '\n')
    print(f'temperature {record["temperature"]:.3f}; written to {record_path}')
  else:
    images, labels = data.load_split('test', args.data_dir)
    recogniser = Recogniser(variables=load(args.weights),
                            temperature=shipped_temperature(args.weights))
    probs = recogniser.probabilities(images)
    print(f'test accuracy {(probs.argmax(-1) == labels).mean():.4f} (temperature '
          f'{recogniser.temperature:.3f}); real test images: {recognisability(probs)}')


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  main()
