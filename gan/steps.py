"""The train step: a pure function `(GANState, batch) -> (GANState, metrics)`.

A batch is {'image': uint8 [n_dis * B, H, W, C], 'label': int32 [n_dis * B]}: B real
images for each of the step's `train.n_dis` D updates. `make_train_steps` closes over
the static settings once and returns k steps in one compiled call, its batches sharded
over the mesh's 'data' axis and its state replicated, the input state donated.

Update rules (`train.update_rule`):
  'simultaneous'  the seed's step: one forward pass, G's and D's gradients from their own
                  losses (n_dis 1, G's batch D's fake batch).
  'alternating'   n_dis D updates against G(z), each on its own real batch and fresh
                  noise, then a G update on `g_batch_size` fresh samples against the
                  updated D.

Randomness: each D update j draws from `fold_in(named(step_key, 'D'), j)` and the G
update from `named(step_key, 'G')`; below those, 'z', 'labels' and one stream per D call
('real', 'fake'), whose own sub-streams feed the augmentation and dropout.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from gan import parallel, streams, updates
from gan.networks import Networks
from gan.schedule import images_per_step
from gan.state import GANState, NetState, ema_rate, keeps_g_ema

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]
TrainStep = Callable[[GANState, Batch], tuple[GANState, Metrics]]


def _d_update_batches(batch: Batch, n_dis: int) -> Batch:
  """[n_dis * B, ...] -> [n_dis, B, ...]: update j takes elements j, j + n_dis, ...

  Strided rather than contiguous, so that each device's share of the sharded batch
  axis stays on that device."""
  return jax.tree.map(lambda x: x.reshape(-1, n_dis, *x.shape[1:]).swapaxes(0, 1), batch)


def _apply_grads(net: NetState, grads, collections: dict) -> NetState:
  return net.apply_gradients(grads=grads, **collections)


def make_simultaneous_step(config: ml_collections.ConfigDict, networks: Networks) -> TrainStep:
  """The seed's step: one forward pass, G's and D's gradients from their own losses."""
  up = updates.Updates(config, networks)

  def step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    key = jax.random.fold_in(streams.named(streams.step_key(state.key, state.step), 'D'), 0)
    num = batch['image'].shape[0]

    def forward(g_params, d_params):
      fake, fake_labels, g_stats = up.generate(state.g, g_params, key, num)
      d_loss, (real_logits, fake_logits, d_stats, penalties, fake_classes) = up.d_objective(
          state.d, d_params, batch, fake, fake_labels, key)
      aux = (real_logits, fake_logits, g_stats, d_stats, penalties)
      return (up.g_objective(fake_logits, fake_classes, fake_labels), d_loss), aux

    (g_loss, d_loss), pullback, aux = jax.vjp(forward, state.g.params, state.d.params,
                                              has_aux=True)
    real_logits, fake_logits, g_stats, d_stats, penalties = aux
    one, zero = jnp.ones_like(g_loss), jnp.zeros_like(g_loss)
    g_grads, _ = pullback((one, zero))  # Two tapes of one forward pass; XLA drops the
    _, d_grads = pullback((zero, one))  # halves of each pullback that go unused.
    new_state = state.replace(g=_apply_grads(state.g, g_grads, g_stats),
                              d=_apply_grads(state.d, d_grads, d_stats))
    return new_state, {**up.g_metrics(g_loss, g_grads),
                       **up.d_metrics(d_loss, real_logits, fake_logits, d_grads), **penalties}

  return step


def make_alternating_updates(config: ml_collections.ConfigDict, networks: Networks):
  """(d_update, g_update): each changes only its own network, BatchNorm statistics too.

  `d_update(state, real, index)` is D update `index` of the step, against G(z) with G
  held fixed; `g_update(state)` a G update on fresh noise, D held fixed. The other
  network runs in train mode (batch statistics), its running averages kept. Neither
  advances `state.step`.
  """
  up = updates.Updates(config, networks)

  def d_update(state: GANState, real: Batch, index) -> tuple[GANState, Metrics]:
    key = jax.random.fold_in(streams.named(streams.step_key(state.key, state.step), 'D'),
                             index)
    fake, fake_labels, _ = up.generate(state.g, state.g.params, key, real['image'].shape[0])
    fake = jax.lax.stop_gradient(fake)

    objective = lambda d_params: up.d_objective(state.d, d_params, real, fake, fake_labels, key)
    (d_loss, (real_logits, fake_logits, d_stats, penalties, _)), d_grads = jax.value_and_grad(
        objective, has_aux=True)(state.d.params)
    return (state.replace(d=_apply_grads(state.d, d_grads, d_stats)),
            {**up.d_metrics(d_loss, real_logits, fake_logits, d_grads), **penalties})

  def g_update(state: GANState) -> tuple[GANState, Metrics]:
    key = streams.named(streams.step_key(state.key, state.step), 'G')

    def objective(g_params):
      fake, fake_labels, g_stats = up.generate(state.g, g_params, key, up.g_batch_size)
      fake_logits, _, fake_classes = networks.discriminate_train_with_classes(
          state.d.params, state.d.collections, fake, fake_labels, streams.named(key, 'fake'))
      return up.g_objective(fake_logits, fake_classes, fake_labels), g_stats

    (g_loss, g_stats), g_grads = jax.value_and_grad(objective, has_aux=True)(state.g.params)
    return (state.replace(g=_apply_grads(state.g, g_grads, g_stats)),
            up.g_metrics(g_loss, g_grads))

  return d_update, g_update


def make_alternating_step(config: ml_collections.ConfigDict, networks: Networks) -> TrainStep:
  """n_dis D updates, each on its own real batch, then a G update against the updated D.
  D's metrics are the mean over its updates."""
  d_update, g_update = make_alternating_updates(config, networks)
  n_dis = config.train.n_dis

  def step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    if n_dis == 1:
      state, d_metrics = d_update(state, batch, 0)
    else:
      def one_update(state, xs):
        index, real = xs
        return d_update(state, real, index)
      # Unrolled: XLA:CPU ran the D updates as a while loop's body 2.9x slower than the
      # same updates in sequence (docs/performance.md); n_dis is small (SN-GAN's 5).
      state, d_metrics = jax.lax.scan(one_update, state,
                                      (jnp.arange(n_dis), _d_update_batches(batch, n_dis)),
                                      unroll=True)
      d_metrics = jax.tree.map(jnp.mean, d_metrics)
    state, g_metrics = g_update(state)
    return state, {**g_metrics, **d_metrics}

  return step


UPDATE_RULES = {'simultaneous': make_simultaneous_step, 'alternating': make_alternating_step}


def make_step_fn(config: ml_collections.ConfigDict, networks: Networks) -> TrainStep:
  """The uncompiled step for `config.train.update_rule`, counting what it does."""
  if config.train.update_rule not in UPDATE_RULES:
    raise ValueError(f'Unknown config.train.update_rule={config.train.update_rule!r}; '
                     f'use one of {sorted(UPDATE_RULES)}.')
  update = UPDATE_RULES[config.train.update_rule](config, networks)
  keeps_ema = keeps_g_ema(config)
  shown = images_per_step(config)

  def step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    new_state, metrics = update(state, batch)
    if keeps_ema:
      # G's state collections are averaged with its parameters, so that the average is
      # sampled with running statistics of its own (gan.sampling).
      keep = ema_rate(config, state.step)
      new_state = new_state.replace(
          g_ema=optax.incremental_update(new_state.g.params, state.g_ema, step_size=1 - keep),
          g_ema_collections=optax.incremental_update(
              new_state.g.collections, state.g_ema_collections, step_size=1 - keep))
    return new_state.replace(step=state.step + 1,
                             images_shown=state.images_shown + shown), metrics

  return step


def _shapes(tree) -> tuple:
  return tuple(jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def _refusing_recompilation(fn: Callable, program_of: Callable, what: str):
  """`fn`, raising when jit traces it a second time for the same program.

  A recompilation mid-run means a shape, dtype or sharding changed between calls, which
  is a bug, not a cost to pay silently. `program_of(last argument)` tells which program a
  call needs (one for the step; one per k for calls of k steps).
  """
  traced: set = set()

  def traced_once_per_program(*args):
    program = program_of(args[-1])
    if program in traced:
      leaves = jax.tree_util.tree_leaves(args[-1])
      raise RuntimeError(f'{what} being compiled again ({[(x.shape, x.dtype) for x in leaves]}'
                         f'): a shape, dtype or sharding changed between calls.')
    traced.add(program)
    return fn(*args)

  return traced_once_per_program


def make_train_step(config: ml_collections.ConfigDict, networks: Networks,
                    mesh: Mesh) -> TrainStep:
  """One step, jitted once: state replicated (and donated), batch split over devices.
  It raises if it is ever traced twice (`_refusing_recompilation`)."""
  step_fn = _refusing_recompilation(make_step_fn(config, networks), lambda batch: None,
                                    'The train step is')
  return jax.jit(step_fn,
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=0)


# (state, dataset {'image', 'label'} or None, indices [k, n_dis * B] or batches with a
# leading k) -> (state, metrics each stacked to [k]).
MultiStep = Callable[[GANState, Batch | None, Array | Batch], tuple[GANState, Metrics]]


def make_train_steps(config: ml_collections.ConfigDict, networks: Networks,
                     mesh: Mesh) -> MultiStep:
  """k steps in one compiled call, a `lax.scan` of the step, jitted once per k.

  The training loop calls this: `run(state, dataset, indices)` gathers each step's batch
  from the dataset kept on the device (`config.data.on_device`) inside the call;
  `run(state, None, batches)` takes batches the host gathered. One dispatch for k steps
  instead of two a step matters on a GPU, where a step takes about a millisecond and the
  host's work around it no less. Each scan iteration is the step of `make_step_fn`, so k
  calls of one step and one call of k steps compute the same (tested). Like
  `make_train_step`, it raises if a call of a k it has compiled before is traced again.
  """
  step_fn = make_step_fn(config, networks)

  def run(state: GANState, dataset: Batch | None, xs) -> tuple[GANState, Metrics]:
    def one_step(state: GANState, x) -> tuple[GANState, Metrics]:
      batch = x if dataset is None else jax.tree.map(lambda a: a[x], dataset)
      return step_fn(state, jax.lax.with_sharding_constraint(batch,
                                                             parallel.batch_sharding(mesh)))

    if len(jax.tree_util.tree_leaves(xs)[0]) == 1:
      # No loop around a single step: the program make_train_step compiles.
      state, metrics = one_step(state, jax.tree.map(lambda a: a[0], xs))
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(one_step, state, xs)

  return jax.jit(_refusing_recompilation(run, _shapes, 'The train steps are'),
                 in_shardings=(parallel.replicated(mesh), parallel.replicated(mesh),
                               parallel.stacked_batch_sharding(mesh)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=0)
