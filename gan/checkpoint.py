"""Orbax checkpoints of the whole GANState (G, D, both optimizer states, the step, the
images shown, the key, the EMA of G).

Resume order: the latest checkpoint in `<workdir>/checkpoints` (or in
`config.checkpoint.directory`) wins; with none, the run starts from
`create_state(config, networks)`. Saves are synchronous, so a save that returned is
complete on disk (a stop asked by a signal, `gan.stop`, saves and exits); orbax writes to
a temporary folder and renames it, so an interrupted save never leaves a half checkpoint
that looks whole.
"""

import copy
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util

from gan import distributed
from gan.state import GANState


# A new --workdir is a new run only with a new checkpoint folder, when the config names one.
_AND_FOLDER = ' (and a new checkpoint.directory, if the config names one)'


class CheckpointMismatchError(ValueError):
  """A checkpoint that restores but does not fit the config (not damage: no fallback)."""


def with_absolute_directory(config):
  """`config`, or a copy whose relative `checkpoint.directory` is made absolute, so that
  the run's recorded config names the folder from any working directory."""
  directory = config.checkpoint.get('directory', '')
  if not directory or '://' in directory or Path(directory).is_absolute():
    return config
  config = copy.deepcopy(config)
  config.checkpoint.directory = str(Path(directory).absolute())
  return config


def directory_of(checkpoint_config, workdir: str | Path) -> str | Path:
  """A run's checkpoint folder: `config.checkpoint.directory` when given (a local folder
  or a URI such as gs://bucket/run/ckpt, kept as written), else `<workdir>/checkpoints`."""
  return checkpoint_config.get('directory') or Path(workdir) / 'checkpoints'


class Checkpointer:
  """Saves and restores GANStates under `directory`, keeping the `max_to_keep` newest."""

  def __init__(self, directory: str | Path, max_to_keep: int):
    self.directory = _checkpoint_path(directory)
    # cleanup_tmp_directories: the temporary folder of a save a kill interrupted is
    # removed when the run restarts (it never counted as a checkpoint).
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False,
            cleanup_tmp_directories=True))
    # Orbax runs that cleanup in a thread it awaits only at the next save; waiting here
    # means a restarted run (and its restore) sees the directory as it will stay.
    await_cleanup = getattr(self._manager, '_maybe_await_cleanup_tmp_directory', None)
    if await_cleanup is not None:
      await_cleanup()

  @classmethod
  def of_run(cls, config, workdir: str | Path) -> 'Checkpointer':
    """The checkpointer of the run `config` describes in `workdir`."""
    return cls(directory_of(config.checkpoint, workdir), config.checkpoint.max_to_keep)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """The steps of the kept checkpoints, oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, state: GANState) -> int:
    """Saves `state` under its step (a no-op if that step is already saved)."""
    step = int(jax.device_get(state.step))
    if step not in self._manager.all_steps():
      try:
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()
      except OSError as error:  # A full disk, a lost mount: the earlier ones are intact.
        kept = self.all_steps()
        raise OSError(
            f'Saving the checkpoint of step {step} in {self.directory} failed ({error}); '
            f'{f"the checkpoint of step {kept[-1]} is intact: " if kept else ""}free the '
            f'space (or fix the folder) and rerun the same command to resume.') from error
    return step

  def restore_latest(self, template: GANState,
                     images_per_step: int | None = None) -> GANState | None:
    """The newest saved state that restores (None when there is none); see `restore`.

    A newest checkpoint that fails to restore (damaged on disk) is reported, moved aside
    to `<step>.broken` (so that the step is saved afresh when the run gets there again)
    and the one before it is used; a run never starts afresh silently: when none
    restores, this raises. A checkpoint that does not fit the config raises at once.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    # Hosts that see different folders (each its own disk) would resume at different
    # steps, or one would start afresh: stop before that.
    distributed.check_same(
        steps[0] if steps else -1, f'latest checkpoints in {self.directory} (-1: none)',
        'Every host must see the same checkpoint folder: a shared disk, or a bucket '
        '(--config.checkpoint.directory=gs://...).')
    failures = {}  # step -> why it did not restore
    for step in steps:
      error = None
      try:
        state = self.restore(step, template, images_per_step)
      except CheckpointMismatchError:
        raise
      except Exception as raised:  # Orbax and TensorStore raise several types.
        error = f'{type(raised).__name__}: {str(raised)[:300]}'
      # A restore that failed on any host (a damaged file it read, a lost connection) falls
      # back on every host, so all continue from one step.
      if distributed.any_process([error is not None])[0]:
        failures[step] = error or 'it failed on another process'
        print(f'WARNING: {distributed.describe()}the checkpoint of step {step} in '
              f'{self.directory} does not restore ({failures[step]}); trying the one '
              f'before.', flush=True)
        continue
      for broken in failures:
        self._set_aside(broken)
      return state
    if failures:
      raise RuntimeError(
          f'No checkpoint in {self.directory} restores: '
          f'{"; ".join(f"step {s}: {why}" for s, why in failures.items())}. Move them '
          f'away to start afresh, or use another --workdir{_AND_FOLDER}.')
    return None

  def _set_aside(self, step: int) -> None:
    """Moves a checkpoint that does not restore to `<step>.broken` (kept for a look),
    so that the run saves that step afresh when it gets there again."""
    path = self.directory / str(step)
    if distributed.is_main() and path.exists():
      path.rename(path.with_name(f'{step}.broken'))
      print(f'WARNING: moved the checkpoint of step {step} to {path.name}.broken.', flush=True)
    distributed.barrier(f'set aside checkpoint {step}')  # Before anyone lists the steps again.
    self._manager.reload()

  def restore(self, step: int, template: GANState,
              images_per_step: int | None = None) -> GANState:
    """The state saved at `step`, laid out (shapes, dtypes, shardings) like `template`.

    A checkpoint written before a field of GANState existed still restores: without
    `g_ema` as a run keeping none (an error when `template` keeps one); without
    `images_shown` with step * `images_per_step` images shown; with spectral norm's
    vectors inside `batch_stats` (before they had a collection of their own) split out
    into `spectral_norm`; an EMA of G without state collections of its own (before they
    were averaged with its parameters) with the live G's, said in a warning. A run that
    kept an EMA and resumes without one drops it.
    """
    if step not in self._manager.all_steps():
      raise FileNotFoundError(f'No checkpoint of step {step}: the kept steps are '
                              f'{self.all_steps()}.')
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except ValueError as error:
      differences = self._layout_differences(step, abstract)
      if differences:
        raise CheckpointMismatchError(
            f'The checkpoint of step {step} in {self.directory} is not a state of this '
            f'config: {"; ".join(differences[:4])}'
            f'{f" (and {len(differences) - 4} more)" if len(differences) > 4 else ""}. '
            f'The folder holds a run of another design or size: resume it with its own '
            f'config (its config.json), or use a new --workdir{_AND_FOLDER}.') from error
      saved = self._saved_fields(step)
      if saved is None or not {'g', 'd', 'step', 'key'} <= saved:
        raise
    if template.g_ema is not None and 'g_ema' not in saved:
      raise CheckpointMismatchError(
          f'The checkpoint of step {step} holds no EMA of G, but the config asks for one '
          f'(train.g_ema_decay or train.g_ema_half_life_kimg): resume with both 0, or start '
          f'a new --workdir{_AND_FOLDER}.')
    if 'images_shown' not in saved and images_per_step is None:
      raise ValueError(f'The checkpoint of step {step} does not count the images shown; '
                       f'give images_per_step to restore it.')
    # What the checkpoint holds, laid out like the template: an EMA of G has G's layout
    # (restored, then dropped, when the template keeps none).
    like = {'g': abstract.g, 'd': abstract.d, 'step': abstract.step, 'key': abstract.key,
            'images_shown': abstract.images_shown, 'g_ema': abstract.g.params,
            'g_ema_collections': abstract.g.collections}
    legacy = [net for net in ('g', 'd')
              if 'spectral_norm' not in self._saved_net_fields(step, net)]
    for net in legacy:
      like[net] = _without_spectral_collection(like[net])
    # Every field on disk, those saved empty (a None EMA) as such.
    on_disk = set(self._saved_tree(step) or saved)
    fields = self._manager.restore(step, args=ocp.args.StandardRestore(
        {name: like[name] if name in saved else None for name in like if name in on_disk}))
    for net in legacy:
      fields[net] = _split_spectral_collection(fields[net], getattr(template, net))
    if template.g_ema is None:
      fields.pop('g_ema', None)
      fields.pop('g_ema_collections', None)
    elif 'g_ema_collections' not in saved:
      fields['g_ema_collections'] = jax.tree.map(jax.numpy.copy, fields['g'].collections)
      print(f'WARNING: the checkpoint of step {step} in {self.directory} was saved before the '
            f"EMA of G kept BatchNorm statistics of its own: it carries the live G's, which "
            f"eval.g_statistics='running' samples it with ('standing' recomputes them).",
            flush=True)
    if 'images_shown' not in fields:
      shown = jax.numpy.asarray(int(fields['step']) * images_per_step, jax.numpy.int32)
      fields['images_shown'] = jax.device_put(shown, template.images_shown.sharding)
    return GANState(**{**fields, 'g_ema': fields.get('g_ema'),
                       'g_ema_collections': fields.get('g_ema_collections')})

  def _saved_tree(self, step: int) -> dict | None:
    try:
      metadata = self._manager.item_metadata(step)
    except (ValueError, FileNotFoundError, KeyError):
      return None
    tree = getattr(metadata, 'tree', metadata)
    return tree if isinstance(tree, dict) else None

  def _saved_fields(self, step: int) -> set[str] | None:
    """The top-level fields of the checkpoint of `step` that hold arrays."""
    tree = self._saved_tree(step)
    if tree is None:
      return None
    return {name for name, value in tree.items() if jax.tree_util.tree_leaves(value)}

  def _layout_differences(self, step: int, abstract: GANState) -> list[str]:
    """How the arrays saved at `step` differ from `abstract`'s (path: saved vs wanted
    shape), up to the layouts `restore` converts; empty when they fit or when the
    checkpoint's metadata cannot be read (damage, reported by the restore itself)."""
    tree = self._saved_tree(step)
    if tree is None:
      return []
    saved, wanted = _shapes_by_path(tree), _shapes_by_path(abstract)
    for optional in ('g_ema', 'images_shown'):  # Fields restore() fills in or drops.
      for shapes in (saved, wanted):
        for path in [p for p in shapes if p.startswith(optional)]:
          del shapes[path]
    differences = [f'{path}: saved {saved.get(path, "nothing")}, this config '
                   f'{wanted.get(path, "nothing")}'
                   for path in sorted(set(saved) | set(wanted))
                   if saved.get(path) != wanted.get(path)]
    return differences

  def _saved_net_fields(self, step: int, net: str) -> set[str]:
    """The fields saved of network `net` ('g' or 'd'), empty ones included."""
    tree = self._saved_tree(step) or {}
    return set(tree.get(net) or {})

  def close(self) -> None:
    self._manager.close()


def _checkpoint_path(directory: str | Path) -> epath.Path:
  """The checkpoint folder as orbax takes it: a local folder made absolute (the process
  may change its working directory), a remote one (`gs://bucket/run/checkpoints`, which
  every host of a multi-host run sees) as given, through etils' epath."""
  if '://' in str(directory):
    return epath.Path(str(directory))
  return epath.Path(Path(directory).absolute())


def _shapes_by_path(tree) -> dict[str, tuple]:
  """{'g/params/Dense_0/kernel': shape, ...} of a state or of a checkpoint's metadata, with
  a network's two state collections under one name (checkpoints from before spectral
  norm's own collection keep its vectors in batch_stats, at the same paths)."""
  shapes = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    names = [str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path]
    if len(names) > 1 and names[1] in ('batch_stats', 'spectral_norm'):
      names[1] = 'state collections'
    if hasattr(leaf, 'shape'):
      shapes['/'.join(names)] = tuple(leaf.shape)
  return shapes


def _without_spectral_collection(net) -> dict:
  """A NetState's layout as written before spectral norm had a collection of its own: its
  vectors inside `batch_stats` (the same paths, in one tree)."""
  merged = {**traverse_util.flatten_dict(net.batch_stats),
            **traverse_util.flatten_dict(net.spectral_norm)}
  return {'step': net.step, 'params': net.params, 'opt_state': net.opt_state,
          'batch_stats': traverse_util.unflatten_dict(merged) if merged else {}}


def _split_spectral_collection(fields: dict, template):
  """The NetState of restored legacy `fields`: `batch_stats` split into BatchNorm's
  statistics and spectral norm's vectors, the paths `template` keeps in each."""
  flat = traverse_util.flatten_dict(fields['batch_stats']) if fields['batch_stats'] else {}
  spectral_paths = set(traverse_util.flatten_dict(template.spectral_norm))
  part = lambda keep: traverse_util.unflatten_dict(
      {path: value for path, value in flat.items() if (path in spectral_paths) == keep})
  return template.replace(step=fields['step'], params=fields['params'],
                          opt_state=fields['opt_state'],
                          batch_stats=part(False) if flat else {},
                          spectral_norm=part(True) if spectral_paths else {})
