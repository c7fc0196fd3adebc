r"""The course project's initial DCGAN on CIFAR-10, exactly as the seed built it.

Reference: the course notebook, CAVASOL/aiffel_quest
`Exploration_quest/exploration_4/xp4_project.ipynb` (commit cc2eb147): cells 23 (G), 35
(D), 42-47 (losses, Adam(1e-4)), 18 (batch 256), 52 (the simultaneous step), 63 (200
epochs), 54 (grids sampled with training=False). The seed is a Keras DCGAN adapted from
Fashion-MNIST to 32x32x3 CIFAR-10:

  G: Dense(4*4*256, no bias) -> BN -> LeakyReLU(0.3) -> reshape 4x4x256
     -> ConvT(128, 5x5, /2) -> BN -> LeakyReLU(0.3) -> ConvT(64) -> BN -> LeakyReLU(0.3)
     -> ConvT(3) -> tanh                      (1,446,976 trainable + 8,576 BN statistics)
  D: Conv(64, 5x5, /2) -> LeakyReLU(0.3) -> Dropout(0.3) -> Conv(128) -> LeakyReLU(0.3)
     -> Dropout(0.3) -> flatten -> Dense(1) logit                  (217,985 parameters)

Non-saturating BCE losses, Adam(1e-4) for both networks, updated simultaneously from one
forward pass, batch 256, z ~ N(0, I) in 100 dimensions, 200 epochs; Keras' initialisers
(Glorot-uniform kernels, zero biases) and BatchNorm (epsilon 1e-3, momentum 0.99).
Where this differs from the notebook (docs/results.md): D's accuracy thresholds the
probability at 0.5 (the notebook compares logits with 0.5), each epoch is a full
permutation without its last partial batch (the notebook: a 10,000-image shuffle buffer),
and grids and metrics sample G by the one protocol of every design (`eval.g_statistics`,
standing statistics; `--config.eval.g_statistics=running` is the notebook's
training=False).

Run (data from $GAN_CIFAR10_DIR, or TFDS when it is unset):

  python train.py --config configs/baseline.py --workdir runs/baseline
  python train.py --config configs/baseline.py:smoke --workdir /tmp/smoke   # CPU, seconds

Expect: on a 2-core CPU about 1.3 min an epoch; after 3 epochs the grids show blurry
blobs with repeated textures. On one H200 GPU with --config.model.compute_dtype=bfloat16
and --config.train.steps_per_call=65 all 200 epochs take a few minutes; the samples stay
blurry blobs (docs/results.md, docs/performance.md).
"""

import ml_collections


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the baseline config; `variant='smoke'` gives a tiny CPU run."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # Every random number of a run (init, noise, dropout, shuffling) comes from it.

  config.data = ml_collections.ConfigDict()
  config.data.dataset = 'cifar10'  # Fixes the image shape and the classes (gan.data.DATASETS).
  # 'auto': a local copy when `dir` or $GAN_CIFAR10_DIR names one (its format detected
  # from the files), TFDS otherwise. Or one of 'tfds', 'binary' (cifar-10-batches-bin),
  # 'python' (cifar-10-batches-py).
  config.data.source = 'auto'
  config.data.dir = ''            # Local copy; '' reads $GAN_CIFAR10_DIR.
  config.data.tfds_data_dir = ''  # TFDS data_dir; '' uses TFDS' default (~/tensorflow_datasets).
  config.data.split = 'train'
  config.data.num_examples = 0    # Use only the first N examples (0: all); smoke runs use few.
  # Keep the uint8 dataset on the accelerator and gather each batch there (CIFAR-10 is
  # 150 MB); False gathers batches on the host and copies each one over.
  config.data.on_device = True
  # Mirror each real image left-right with probability 1/2 before D sees it (BigGAN's
  # --mirror_augment, a data augmentation: the fakes are not flipped); the seed does not.
  config.data.random_flip = False

  config.model = ml_collections.ConfigDict()
  config.model.name = 'dcgan'     # Family: gan/models/<name>.py, settings in model.<name>.
  config.model.latent_dim = 100
  config.model.conditional = False  # Whether G and D are given class labels.
  # How a conditional D uses the labels: 'projection' adds <embed(y), h> to its logit
  # (Miyato & Koyama 2018); 'acgan' adds an auxiliary classifier of the real and fake
  # images' classes, trained with loss.class_weight (Odena et al. 2017).
  config.model.class_head = 'projection'
  config.model.compute_dtype = 'float32'  # 'bfloat16' on GPU/TPU; parameters stay float32.

  config.model.dcgan = dcgan = ml_collections.ConfigDict()
  # Keras BatchNormalization defaults: running = 0.99 * running + 0.01 * batch.
  dcgan.bn_momentum = 0.99
  dcgan.bn_epsilon = 1e-3
  # How the strided layers run (gan.ops). 'subpixel' computes nn.ConvTranspose's function
  # with the same parameters but without a zero-dilated convolution, which XLA:CPU runs
  # 10-20x slower (jax-ml/jax#23783); 'subpixel_grad' does the same for the input
  # gradient of D's strided convolutions; 'space_to_depth' is a stride-1 convolution of
  # the folded input; 'flax' is Flax's own layer. Each is tested equal to the Flax layer.
  dcgan.conv_transpose_impl = 'subpixel'
  dcgan.strided_conv_impl = 'subpixel_grad'
  # CPU only: both rewrites run their wide convolutions by Winograd's F(4x4, 3x3), 4x
  # fewer multiplies, at a float32 rounding of ~2e-5 of each output's scale; False keeps
  # the exact-tap convolutions.
  dcgan.winograd = True

  dcgan.G = ml_collections.ConfigDict()
  dcgan.G.base_size = 4              # Dense output is base_size^2 * base_channels,
  dcgan.G.base_channels = 256        # reshaped to [base_size, base_size, channels].
  dcgan.G.channels = (128, 64)       # Hidden ConvTranspose widths, each doubling the size.
  dcgan.G.out_channels = 3           # The last ConvTranspose, then tanh.
  dcgan.G.kernel_size = 5
  dcgan.G.activation = 'leaky_relu'  # 'leaky_relu' or 'relu'.
  dcgan.G.leaky_slope = 0.3          # Keras' LeakyReLU default alpha.
  dcgan.G.spectral_norm = False      # Spectrally normalised kernels (see D's).

  dcgan.D = ml_collections.ConfigDict()
  dcgan.D.channels = (64, 128)       # Stride-2 convolutions.
  dcgan.D.batch_norm = (False, False)  # BatchNorm after each convolution or not.
  dcgan.D.kernel_size = 5
  dcgan.D.activation = 'leaky_relu'
  dcgan.D.leaky_slope = 0.3
  dcgan.D.dropout = 0.3              # After each activation; 0 disables.
  # Each kernel divided by its largest singular value (Miyato et al. 2018), one power
  # iteration a train step; its vectors live beside BatchNorm's statistics.
  dcgan.D.spectral_norm = False

  config.loss = ml_collections.ConfigDict()
  # 'non_saturating': G minimises BCE(1, D(G(z))), D BCE(1, real) + BCE(0, fake); or
  # 'hinge', 'wasserstein' (gan/losses/).
  config.loss.name = 'non_saturating'
  # Penalties on D's input gradients, added to its loss (gan.regularizers): WGAN-GP's on
  # real-fake interpolates (lambda; 10 with 'wasserstein'), and R1's on real images
  # (gamma). 0: none.
  config.loss.gradient_penalty = 0.0
  config.loss.r1_gamma = 0.0
  # AC-GAN's classification loss weight (model.class_head='acgan' only): D's cross-entropy
  # on real and fake images' classes, and G's on its fakes', added to their losses.
  config.loss.class_weight = 1.0

  # Augmentations of everything D sees, real and fake (gan/augment/): comma-separated
  # names, e.g. 'flip'; '' none, as the seed.
  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ''

  config.optim = ml_collections.ConfigDict()
  for net in ('G', 'D'):
    config.optim[net] = ml_collections.ConfigDict()
    config.optim[net].name = 'adam'
    config.optim[net].learning_rate = 1e-4
    config.optim[net].b1 = 0.9
    config.optim[net].b2 = 0.999
    config.optim[net].eps = 1e-7  # Keras' Adam epsilon (optax defaults to 1e-8).
    # The learning rate over the run: 'constant', or 'linear' decay to 0 (SNGAN).
    config.optim[net].schedule = 'constant'

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 256   # D's real batch (global, split over all devices); the
                                  # last partial batch of an epoch is dropped (195 steps).
  config.train.g_batch_size = 0   # G's samples per G update; 0: batch_size.
  config.train.n_dis = 1          # D updates per G update, each on its own real batch.
  config.train.num_epochs = 200
  # A wall-clock budget in minutes (0: none): training stops, with a checkpoint and a
  # last grid, after the call of steps that passes it. Counted over resumes (the
  # `time_s` of metrics.jsonl), for comparisons at an equal budget.
  config.train.time_budget_minutes = 0.0
  # What the budget counts: 'wall' seconds, or 'cpu', this process' CPU seconds (a CPU run
  # pinned to its own core with `taskset`, fair when other work shares the machine).
  config.train.time_budget_clock = 'wall'
  # 'simultaneous': the seed's step, G and D updated from one forward pass (two tapes;
  # n_dis 1, G's batch = D's). 'alternating': n_dis D steps, then a G step on fresh
  # noise against the updated D.
  config.train.update_rule = 'simultaneous'
  # An exponential moving average of G's parameters, by its decay per step or by its
  # half-life in kimg (StyleGAN2-ADA's ema_kimg); set at most one; 0 and 0: none, as the
  # seed. When kept, grids and metrics sample the average, usually better than the
  # last iterate (Yazici et al. 2019).
  config.train.g_ema_decay = 0.0
  config.train.g_ema_half_life_kimg = 0.0
  # 0: the EMA's decay ramps up as min(decay, (1 + t) / (10 + t)) from the first step
  # (tf.train.ExponentialMovingAverage's num_updates). S > 0: the EMA copies G until step
  # S, then averages at the full decay (BigGAN-PyTorch's --ema_start).
  config.train.g_ema_start_step = 0
  # PRNG of D's dropout masks: 'rbg' (XLA's RngBitGenerator) draws Bernoulli masks of the
  # same distribution as JAX's default 'threefry2x32', several times faster on the CPU.
  # Its streams may differ between CPU and GPU/TPU.
  config.train.dropout_rng = 'rbg'
  config.train.log_every_steps = 50  # Host sync period: metrics of every step are written then.
  # Steps per compiled call (a lax.scan with each batch gathered on the device): one
  # dispatch for k steps. 1 on the CPU, where a step takes about a second; on a GPU,
  # where it takes about a millisecond, a divisor of the steps of an epoch such as 39
  # or 65 (another k compiles a second program for the epoch's remainder).
  config.train.steps_per_call = 1
  # True: stop at once when JAX has no GPU or TPU (a CPU-only jaxlib), instead of
  # training for hours on the host; the Colab notebook sets it.
  config.train.require_accelerator = False

  config.eval = ml_collections.ConfigDict()
  # Periodic work is scheduled as '<number> <unit>', unit epoch(s), kimg or step(s)
  # (gan.schedule); '' never. Work falls due at the end of the call of steps that reaches
  # its time, and always at the end of training.
  config.eval.samples_every = '1 epoch'  # Fixed-noise grid (and at step 0).
  config.eval.grid_size = 8          # The grid holds grid_size^2 samples.
  # How G's BatchNorm is set when sampling, for the grids, the metrics and gan.sample alike
  # (gan/sampling.py); one protocol for every design:
  #   'standing'  the BigGAN paper's standing statistics (BigGAN-PyTorch's README and
  #               utils.accumulate_standing_stats, with --mybn): G in train mode over
  #               standing_batches batches of fresh latents, their batch statistics
  #               averaged; statistics of exactly the parameters sampled, EMA included.
  #   'running'   the running averages kept in training (an EMA's averaged with its
  #               weights, as BigGAN-PyTorch's and StudioGAN's EMAs do): Keras'
  #               training=False, the seed's sampling, and SN-GAN's and StudioGAN's default.
  #   'batch'     train mode on each sampled batch (BigGAN-PyTorch's CIFAR-10 script, which
  #               samples G_ema without --G_eval_mode).
  config.eval.g_statistics = 'standing'
  config.eval.standing_batches = 16    # BigGAN-PyTorch's num_standing_accumulations.
  config.eval.standing_batch_size = 0  # Latents a standing batch; 0: train.batch_size.
  config.eval.gif_fps = 4
  config.eval.curve_smoothing = 0.98  # EMA factor of the trend lines in curves.png.
  # Metrics of G during training (gan/metrics/, by name). Off here: on a 2-core CPU the
  # FID Inception runs ~20 img/s; turn it on for GPU/TPU runs (e.g. '10 epochs') or
  # use `python -m gan.evaluate` on a finished run.
  config.eval.every = ''
  config.eval.metrics = ('fid', 'kid', 'recognisability')  # + 'inception_score' (below).
  config.eval.num_samples = 10_000
  config.eval.reference_split = 'train'  # CIFAR-10 split the samples are compared with.
  config.eval.batch_size = 25            # Inception batch (25 fastest on a CPU).
  # A weights file with the reference Inception's 1008-way logits layer, needed by the
  # 'inception_score' metric (gan.metrics.inception_score); '' reads $GAN_INCEPTION_LOGITS.
  config.eval.inception_logits = ''

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every = '1 epoch'  # Also at the end and when stopped (SIGTERM, Ctrl-C).
  config.checkpoint.max_to_keep = 2
  # Where the checkpoints go; '': <workdir>/checkpoints. A multi-host run whose workdir
  # is process 0's own disk names a folder every host sees, e.g. gs://bucket/run/ckpt
  # (orbax writes it through etils' epath and TensorStore; gs:// needs the '.[gcs]' extra).
  config.checkpoint.directory = ''

  config.log = ml_collections.ConfigDict()
  config.log.tensorboard = True
  config.log.progress_bar = True

  return apply_variants(config, variant, {})


def apply_variants(config: ml_collections.ConfigDict, variant: str,
                   variants: dict) -> ml_collections.ConfigDict:
  """Applies `variant`, comma-separated names from `variants` (name -> function that
  edits the config) and 'smoke' (always known, applied last): 'ema,smoke' is the EMA
  variant's smoke run."""
  names = [name for name in variant.split(',') if name]
  known = {**variants, 'smoke': apply_smoke}
  unknown = [name for name in names if name not in known]
  if unknown:
    raise ValueError(f'Unknown config variant {",".join(unknown)!r}; use comma-separated '
                     f'names from {sorted(known)} (or none).')
  for name in sorted(names, key=lambda name: name == 'smoke'):
    known[name](config)
  return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny data and steps, same networks: runs end to end on a CPU in seconds."""
  config.data.num_examples = 96
  # G's batch keeps its ratio to D's (SN-GAN's 128 against 64).
  config.train.g_batch_size = config.train.g_batch_size * 16 // config.train.batch_size
  config.train.batch_size = 16
  config.train.num_epochs = 2
  config.train.log_every_steps = 2
  config.eval.grid_size = 4
