"""Generic LOSO trainer: one model trained from scratch per left-out subject.

`train_and_evaluate(config, workdir)` runs every fold of the protocol, sharded
over all devices (data parallel on a `jax.sharding.Mesh`), with orbax
checkpoints per fold so a killed run resumes where it stopped and ends with
the same results. Nothing here depends on the model or the corpus: the model
is chosen by `config.model_name`, the corpus by `config.input.datasets`.

workdir layout:
  results.json, predictions.csv, confusion.png   pooled over folds
  run.json, folds/<subject>/run.json             the run's identity (what
                                                 determines its result; see
                                                 mer_jax/run_identity.py)
  .lock                                          one writer at a time
  folds/<subject>/result.json                    one finished fold
  folds/<subject>/dynamic_images.png             frames, target and constructed
                                                 dynamic image of a few test
                                                 clips (models that make one)
  folds/<subject>/checkpoints/                   orbax, latest (and best)
  tensorboard/<subject>/                         loss, lr, val/test metrics,
                                                 test/dynamic_images
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from mer_jax import checkpoints
from mer_jax import config_lib
from mer_jax import evaluation
from mer_jax import metric_writer
from mer_jax import models
from mer_jax import run_identity
from mer_jax import visualize
from mer_jax.data import pipeline
from mer_jax.data import sources

log = logging.getLogger(__name__)


@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any


# ----------------------------------------------------------------------------
# Optimizer, state, steps.


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  s = config.schedule
  if s.name == "constant":
    return optax.constant_schedule(s.lr)
  if s.name == "warmup_cosine":
    warmup = min(s.warmup_steps, max(config.num_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, s.lr, warmup, max(config.num_steps, warmup + 1))
  raise ValueError(f"Unknown config.schedule.name {s.name!r}: constant | warmup_cosine")


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  o = config.optimizer
  fn = getattr(optax, o.name, None)
  if fn is None:
    raise ValueError(f"config.optimizer.name={o.name!r} is not an optax optimizer")
  tx = fn(learning_rate=make_schedule(config), **o.kwargs.to_dict())
  if o.coupled_weight_decay:
    tx = optax.chain(optax.add_decayed_weights(o.coupled_weight_decay), tx)
  if o.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
  return tx


def _input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  i = config.input
  return (1, i.num_frames, i.size, i.size, i.channels)


def create_train_state(model, tx, config, rng: jax.Array,
                       init_params: Any = None) -> TrainState:
  """Initialises parameters from `rng` (same rng -> same state).

  `init_params` (from `config.init_from`) replaces every parameter whose path
  and shape match.
  """
  variables = model.init({"params": rng, "dropout": rng},
                         jnp.zeros(_input_shape(config), jnp.float32), train=False)
  params = variables["params"]
  if init_params is not None:
    params, _, _ = checkpoints.merge_params(params, init_params)
    params = jax.tree.map(jnp.asarray, params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params))


def _variables(params, batch_stats):
  v = {"params": params}
  if batch_stats:
    v["batch_stats"] = batch_stats
  return v


def _batch_inputs(model, batch) -> dict[str, Any]:
  """Batch entries a model takes besides the frames (`model.batch_inputs`)."""
  return {k: batch[k] for k in getattr(model, "batch_inputs", ()) if k in batch}


def make_train_step(model, tx, aux_losses: Callable | None,
                    aux_kwargs: dict[str, Any]):
  """`train_step(state, batch, rng) -> (state, metrics)`; rng is per fold."""

  def train_step(state: TrainState, batch: dict[str, jnp.ndarray],
                 rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    mask = batch["mask"]

    def loss_fn(params):
      mutable = ["batch_stats"] if state.batch_stats else False
      out = model.apply(_variables(params, state.batch_stats), batch["frames"],
                        train=True, rngs={"dropout": step_rng}, mutable=mutable,
                        **_batch_inputs(model, batch))
      (logits, aux), new_vars = out if mutable else (out, {})
      ce = optax.softmax_cross_entropy_with_integer_labels(
          logits.astype(jnp.float32), batch["label"])
      ce = jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)
      terms = {"ce": ce}
      if aux_losses is not None:
        terms.update(aux_losses(aux, batch, **aux_kwargs))
      loss = sum(terms.values())
      acc = jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask) / jnp.maximum(
          jnp.sum(mask), 1.0)
      return loss, (terms, acc, new_vars.get("batch_stats", state.batch_stats))

    (loss, (terms, acc, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=batch_stats, opt_state=opt_state)
    metrics = {"loss": loss, "accuracy": acc, "grad_norm": optax.tree.norm(grads),
               **{f"loss_{k}": v for k, v in terms.items()}}
    return new_state, metrics

  return train_step


def make_eval_step(model):
  """`eval_step(params, batch_stats, batch) -> probs [B, K]`."""

  def eval_step(params, batch_stats, batch):
    logits, _ = model.apply(_variables(params, batch_stats), batch["frames"],
                            train=False, **_batch_inputs(model, batch))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return eval_step


# The aux output that `dynamic_images.png` draws (any model that returns it).
PREVIEW_KEY = "dynamic_image"


def make_preview_step(model):
  """`preview_step(params, batch_stats, batch) -> aux[PREVIEW_KEY]` `[B, H, W]`."""

  def preview_step(params, batch_stats, batch):
    _, aux = model.apply(_variables(params, batch_stats), batch["frames"],
                         train=False, **_batch_inputs(model, batch))
    return aux[PREVIEW_KEY].astype(jnp.float32)

  return preview_step


def has_preview(model, abstract_state, config) -> bool:
  """Whether the model's aux output holds a `PREVIEW_KEY` image (shapes only)."""
  _, aux = jax.eval_shape(
      lambda p, bs: model.apply(_variables(p, bs), jnp.zeros(_input_shape(config)),
                                train=False),
      abstract_state.params, abstract_state.batch_stats)
  return isinstance(aux, dict) and getattr(aux.get(PREVIEW_KEY), "ndim", 0) == 3


# ----------------------------------------------------------------------------
# Devices.


def make_mesh(config: ml_collections.ConfigDict,
              devices: list[Any] | None = None) -> jax.sharding.Mesh:
  """A ('folds', 'data', 'fsdp') mesh over all devices of all processes.

  `devices` defaults to `jax.devices()`; `scripts/aot_compile.py` passes the
  devices of a TPU topology description (compiling without the chips).
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("JAX found no devices: check the jax install (CPU: pip "
                     "install jax) or JAX_PLATFORMS.")
  fsdp, folds = config.mesh.fsdp, config.mesh.folds
  if fsdp < 1 or folds < 1 or len(devices) % (fsdp * folds):
    raise ValueError(f"config.mesh fsdp={fsdp} x folds={folds} must divide the "
                     f"{len(devices)} devices")
  data = (len(devices) // (fsdp * folds) if config.mesh.data in (-1, None)
          else config.mesh.data)
  if data * fsdp * folds > len(devices):
    raise ValueError(f"config.mesh folds={folds} x data={data} x fsdp={fsdp} needs "
                     f"more than the {len(devices)} devices that exist")
  # Auto axis types: explicit sharding would reject the model's reshapes of
  # batch-sharded arrays.
  shape, names = (folds, data, fsdp), ("folds", "data", "fsdp")
  axis_types = (jax.sharding.AxisType.Auto,) * 3
  used = devices[:folds * data * fsdp]
  try:
    return jax.make_mesh(shape, names, axis_types=axis_types, devices=used)
  except (ValueError, NotImplementedError, AssertionError):
    # jax's topology-aware layout (it asserts) wants one device per chip; a TPU v4
    # described per core (2 per chip, e.g. a v4:2x2x1 topology description)
    # is refused: keep the devices in their given order.
    return jax.sharding.Mesh(np.array(used).reshape(shape), names,
                             axis_types=axis_types)


class Sharder:
  """Where arrays live: batches split over all devices, parameters by rule.

  Parameters (and optimizer state of the same shape) are replicated, except,
  with `mesh.fsdp > 1`, leaves of at least `mesh.fsdp_min_size` elements,
  which are split on the 'fsdp' axis along their largest divisible dimension
  (FSDP is a config change, not a code change).
  """

  def __init__(self, mesh: jax.sharding.Mesh, fsdp_min_size: int = 2 ** 14):
    self.mesh = mesh
    self.data = NamedSharding(mesh, P(("data", "fsdp")))
    self.stacked_data = NamedSharding(mesh, P("folds", ("data", "fsdp")))
    self.replicated = NamedSharding(mesh, P())
    self.size = mesh.shape["data"] * mesh.shape["fsdp"]
    self.fsdp = mesh.shape["fsdp"]
    self.fsdp_min_size = fsdp_min_size

  def leaf(self, x) -> NamedSharding:
    shape = getattr(x, "shape", ())
    if self.fsdp == 1 or np.prod(shape, dtype=np.int64) < self.fsdp_min_size:
      return self.replicated
    for axis in np.argsort(shape)[::-1]:
      if shape[axis] % self.fsdp == 0:
        spec = [None] * len(shape)
        spec[axis] = "fsdp"
        return NamedSharding(self.mesh, P(*spec))
    return self.replicated

  def tree(self, tree):
    return jax.tree.map(self.leaf, tree)

  def stacked(self, shardings):
    """Shardings of fold-stacked trees: a leading axis on the 'folds' mesh axis."""
    return jax.tree.map(
        lambda sh: NamedSharding(self.mesh, P("folds", *sh.spec)), shardings)

  def check_batch_size(self, batch_size: int, what: str) -> None:
    if batch_size % self.size:
      raise ValueError(f"config.input.{what}={batch_size} is not divisible by "
                       f"the {self.size} devices of the mesh.")

  def put_batch(self, batch: dict[str, np.ndarray], stacked: bool = False,
                process_local: bool = False) -> dict[str, jax.Array]:
    """Host batch -> global arrays sharded over the mesh's batch axes.

    `process_local`: each process holds its own consecutive `B / n` rows of
    the global batch (training: `pipeline.train_dataset(shard_index=...)`);
    otherwise every process holds the whole global batch (evaluation) and
    feeds its slice. `stacked`: arrays are `[K, B, ...]` (K folds), the batch
    axis is axis 1.
    """
    n, pid = jax.process_count(), jax.process_index()
    sharding = self.stacked_data if stacked else self.data
    axis = int(stacked)

    def put(x):
      if n == 1:
        return jax.device_put(x, sharding)
      if process_local:
        shape = x.shape[:axis] + (x.shape[axis] * n,) + x.shape[axis + 1:]
        return jax.make_array_from_process_local_data(sharding, x, shape)
      local = x.shape[axis] // n
      part = x[:, pid * local:(pid + 1) * local] if stacked else x[pid * local:(pid + 1) * local]
      return jax.make_array_from_process_local_data(sharding, part, x.shape)

    return {k: put(v) for k, v in batch.items()}

  def fetch(self, x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


# ----------------------------------------------------------------------------
# Model, optimizer and jitted steps on a mesh: what `train_and_evaluate` runs
# and what `scripts/aot_compile.py` compiles for a TPU topology (one code path).


def make_sharder(config: ml_collections.ConfigDict,
                 devices: list[Any] | None = None) -> Sharder:
  """The mesh of `config.mesh` over `devices`; checks the batch sizes divide."""
  sharder = Sharder(make_mesh(config, devices), config.mesh.fsdp_min_size)
  sharder.check_batch_size(config.input.batch_size, "batch_size")
  sharder.check_batch_size(config.input.eval_batch_size, "eval_batch_size")
  return sharder


@dataclasses.dataclass
class Steps:
  """Model, optimizer, state shapes / shardings and the jitted steps.

  train_step(state, batch, rng) -> (state, metrics); eval_step(params,
  batch_stats, batch) -> probs `[B, K]`; with `protocol.parallel_folds` = K
  > 1, fold_train_step is the vmapped train step on fold-stacked `[K, ...]`
  states, batches and rngs (else None).
  """
  model: Any
  tx: optax.GradientTransformation
  aux_losses: Callable | None
  abstract_state: TrainState
  state_sharding: TrainState
  train_step: Any
  eval_step: Any
  fold_train_step: Any
  parallel_folds: int


def build_steps(config: ml_collections.ConfigDict, num_classes: int,
                sharder: Sharder) -> Steps:
  """Builds (does not compile) everything a run needs besides the data."""
  model_module = models.get_module(config.model_name)
  # "auto" model settings resolve for the devices of the mesh (a TPU
  # topology's under scripts/aot_compile.py).
  model = models.get_model(config.model_name, num_classes,
                           platform=sharder.mesh.devices.flat[0].platform,
                           **config.model.to_dict())
  tx = make_optimizer(config)
  aux_losses = getattr(model_module, "aux_losses", None)
  abstract_state = jax.eval_shape(
      lambda: create_train_state(model, tx, config, jax.random.PRNGKey(0)))
  state_sharding = sharder.tree(abstract_state)
  step_fn = make_train_step(model, tx, aux_losses, config.aux_loss.to_dict())
  # The pjit of the design card: shardings pinned in and out, compiled once.
  train_step = jax.jit(step_fn,
                       in_shardings=(state_sharding, sharder.data, sharder.replicated),
                       out_shardings=(state_sharding, sharder.replicated),
                       donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(model),
                      in_shardings=(state_sharding.params, state_sharding.batch_stats,
                                    sharder.data),
                      out_shardings=sharder.data)
  k = max(int(config.protocol.parallel_folds), 1)
  fold_train_step = None
  if k > 1:
    if k % config.mesh.folds:
      raise ValueError(f"config.protocol.parallel_folds={k} must be a multiple "
                       f"of config.mesh.folds={config.mesh.folds}: the fold "
                       "axis of each group is split over mesh.folds devices.")
    stacked_sharding = sharder.stacked(state_sharding)
    fold_train_step = jax.jit(
        jax.vmap(step_fn),
        in_shardings=(stacked_sharding, sharder.stacked_data,
                      sharder.stacked(sharder.replicated)),
        out_shardings=(stacked_sharding, sharder.stacked(sharder.replicated)),
        donate_argnums=(0,))
  return Steps(model=model, tx=tx, aux_losses=aux_losses,
               abstract_state=abstract_state, state_sharding=state_sharding,
               train_step=train_step, eval_step=eval_step,
               fold_train_step=fold_train_step, parallel_folds=k)


# ----------------------------------------------------------------------------
# Folds.


def fold_dirname(subject: str) -> str:
  return re.sub(r"[^0-9A-Za-z_.-]", "_", subject.replace("/", "__"))


def predict(eval_step, state_params, batch_stats, corpus, clips, config,
            sharder: Sharder) -> np.ndarray:
  """Class probabilities `[len(clips), K]`, each clip scored once."""
  probs = []
  for batch in pipeline.eval_batches(corpus, clips, config.input,
                                     config.input.eval_batch_size):
    mask = batch["mask"] > 0
    p = sharder.fetch(eval_step(state_params, batch_stats, sharder.put_batch(batch)))
    probs.append(p[mask])
  return np.concatenate(probs) if probs else np.zeros((0, len(corpus.class_names)))


class Fold:
  """Trains and tests one LOSO fold, resuming from its latest checkpoint."""

  def __init__(self, *, config, corpus: sources.Corpus, model, tx, train_step,
               eval_step, sharder: Sharder, fold_index: int, test_subject: str,
               train_subjects: list[str], workdir: str, init_params=None,
               preview_step=None):
    self.config = config
    self.preview_step = preview_step
    self.init_params = init_params
    self.corpus = corpus
    self.model = model
    self.tx = tx
    self.train_step = train_step
    self.eval_step = eval_step
    self.sharder = sharder
    self.index = fold_index
    self.subject = test_subject
    self.dir = os.path.join(workdir, "folds", fold_dirname(test_subject))
    self.tb_dir = os.path.join(workdir, "tensorboard", fold_dirname(test_subject))
    fold_seed = hash_seed(config.seed, test_subject)
    self.rng = jax.random.PRNGKey(fold_seed)
    self.data_seed = fold_seed
    val = []
    if config.protocol.selection == "inner_val":
      val = sources.inner_validation_subjects(
          train_subjects, config.protocol.val_subjects, fold_seed)
    self.val_subjects = val
    self.train_clips = [c for c in corpus.clips
                        if c.subject in train_subjects and c.subject not in val]
    self.val_clips = [c for c in corpus.clips if c.subject in val]
    self.test_clips = [c for c in corpus.clips if c.subject == test_subject]

  @property
  def result_path(self) -> str:
    return os.path.join(self.dir, "result.json")

  def done(self) -> dict[str, Any] | None:
    """The fold's result if it already finished (a resumed run skips it)."""
    if os.path.exists(self.result_path):
      return checkpoints.read_json(
          self.result_path, "delete it to test the fold again from its checkpoints")
    return None

  def prepare(self) -> "FoldRun":
    """Fresh or restored state, checkpoint manager and writer of this fold."""
    config = self.config
    init_rng, step_rng = jax.random.split(self.rng)
    state = create_train_state(self.model, self.tx, config, init_rng,
                               self.init_params)
    state = jax.device_put(state, self.sharder.tree(state))
    best = None
    if config.protocol.selection == "inner_val":
      best = {"params": jax.tree.map(jnp.copy, state.params),
              "batch_stats": jax.tree.map(jnp.copy, state.batch_stats),
              "score": jnp.asarray(-1.0, jnp.float32),
              "step": jnp.asarray(0, jnp.int32)}
    ckpt_dir = os.path.join(os.path.abspath(self.dir), "checkpoints")
    mngr = ocp.CheckpointManager(
        ckpt_dir, options=ocp.CheckpointManagerOptions(
            max_to_keep=config.keep_checkpoints, create=True))
    items = {"state": ocp.args.StandardRestore(state)}
    if best is not None:
      items["best"] = ocp.args.StandardRestore(best)
    # The newest step that restores; a corrupt newer one is warned about and
    # moved to folds/<subject>/corrupt_checkpoints/ so it can be re-saved.
    start, restored = checkpoints.restore_latest_valid(
        mngr, lambda s: mngr.restore(s, args=ocp.args.Composite(**items)),
        quarantine=True)
    if start is None:
      start = 0
    else:
      state = restored["state"]
      best = restored.get("best") if best is not None else None
      log.info("fold %s: resumed from step %d", self.subject, start)
    if jax.process_index() == 0:
      # A checkpoint directory is self-describing: mer_jax.load_model needs
      # nothing else to rebuild the model and its input pipeline. Written only
      # after the restore succeeded (atomically), so a failed run never
      # relabels good checkpoints.
      checkpoints.write_json(os.path.join(ckpt_dir, checkpoints.META_FILE), {
          "config": config.to_dict(), "class_names": list(self.corpus.class_names),
          "test_subject": self.subject, "train_subjects": sorted(
              {c.subject for c in self.train_clips}),
          "selection": config.protocol.selection})
    writer = metric_writer.SummaryWriter(self.tb_dir)
    if start:
      writer.restart(start + 1)  # drop what a killed run logged past `start`
    return FoldRun(state=state, best=best, start=start, mngr=mngr,
                   writer=writer, step_rng=step_rng)

  def batches(self, start: int):
    return pipeline.train_dataset(
        self.corpus, self.train_clips, self.config.input,
        self.config.input.batch_size, seed=self.data_seed, start_step=start,
        shard_index=jax.process_index(), shard_count=jax.process_count())

  def after_step(self, run: "FoldRun", state, done: int) -> None:
    """Selection and checkpointing after step `done` (1-based)."""
    config = self.config
    if run.best is not None and (done % config.protocol.eval_every == 0
                                 or done == config.num_steps):
      run.best = self._select(state, run.best, done, run.writer)
    if done % config.checkpoint_every == 0 or done == config.num_steps:
      items = {"state": ocp.args.StandardSave(state)}
      if run.best is not None:
        items["best"] = ocp.args.StandardSave(run.best)
      run.mngr.save(done, args=ocp.args.Composite(**items))

  def run(self, num_folds: int) -> dict[str, Any]:
    """Trains (or resumes) and tests this fold alone."""
    result = self.done()
    if result is not None:
      return result
    config = self.config
    run = self.prepare()
    batches = self.batches(run.start)
    state, pending = run.state, []
    schedule = make_schedule(config)
    bar = tqdm(range(run.start, config.num_steps), initial=run.start,
               total=config.num_steps,
               desc=f"fold {self.index + 1}/{num_folds} {self.subject}",
               disable=not config.progress or jax.process_index() != 0,
               dynamic_ncols=True)
    try:
      for step in bar:
        batch = self.sharder.put_batch(next(batches), process_local=True)
        state, metrics = self.train_step(state, batch, run.step_rng)
        pending.append((step + 1, metrics))
        done = step + 1
        if done % config.log_every == 0 or done == config.num_steps:
          last = self.log_metrics(
              [(s, m) for (s, _), m in zip(pending, jax.device_get(
                  [m for _, m in pending]))], run.writer, schedule)
          pending = []
          bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['accuracy']:.2f}")
        self.after_step(run, state, done)
    except BaseException:
      _close_quietly([run])
      raise
    return self.finish(run, state)

  def finish(self, run: "FoldRun", state) -> dict[str, Any]:
    """Tests the selected model on the left-out subject; writes result.json."""
    config = self.config
    run.mngr.wait_until_finished()
    run.mngr.close()
    if run.best is not None:
      params, batch_stats = run.best["params"], run.best["batch_stats"]
      selected_step = int(run.best["step"])
    else:
      params, batch_stats, selected_step = state.params, state.batch_stats, config.num_steps
    probs = predict(self.eval_step, params, batch_stats, self.corpus,
                    self.test_clips, config, self.sharder)
    preds = probs.argmax(-1)
    labels = [c.label for c in self.test_clips]
    fold_scores = evaluation.scores(labels, preds, len(self.corpus.class_names))
    run.writer.scalars(config.num_steps, {f"test/{k}": v for k, v in fold_scores.items()})
    if self.preview_step is not None:
      self.write_preview(run.writer, params, batch_stats, preds, selected_step)
    run.writer.close()
    result = {
        "subject": self.subject, "selected_step": selected_step,
        "val_subjects": self.val_subjects, "n_train": len(self.train_clips),
        "sample_ids": [c.sample_id for c in self.test_clips],
        "labels": labels, "preds": preds.tolist(),
        "probs": np.round(probs, 6).tolist(),
    }
    if jax.process_index() == 0:
      checkpoints.write_json(self.result_path, result)
    return result

  def write_preview(self, writer, params, batch_stats, preds, step: int) -> None:
    """`dynamic_images.png` and TensorBoard `test/dynamic_images`.

    The first `config.preview_samples` test clips: their frames, target and
    constructed dynamic image, labelled with the fold's predictions `preds`.
    One forward pass on one small batch; nothing else is changed.
    """
    wanted = self.config.get("preview_samples", 0)
    n = min(wanted, len(self.test_clips))
    if n <= 0:
      return
    clips = self.test_clips[:n]
    # A multiple of the data-parallel size; the same shape every fold (one compile).
    size = -(-wanted // self.sharder.size) * self.sharder.size
    (batch,) = list(pipeline.eval_batches(self.corpus, clips, self.config.input, size))
    di = self.sharder.fetch(self.preview_step(params, batch_stats,
                                              self.sharder.put_batch(batch)))
    if jax.process_index() != 0:
      return
    target = batch.get(PREVIEW_KEY)
    image = visualize.dynamic_image_grid(
        batch["frames"][:n], None if target is None else target[:n], di[:n],
        labels=[c.label for c in clips], pred_labels=preds[:n],
        class_names=self.corpus.class_names,
        row_names=[c.sample_id for c in clips],
        title=f"{self.config.model_name}, test subject {self.subject}, step {step}")
    visualize.save_png(image, os.path.join(self.dir, "dynamic_images.png"))
    writer.image(self.config.num_steps, "test/dynamic_images", image)

  def log_metrics(self, host_pending, writer, schedule) -> dict[str, float]:
    """Logs fetched metrics `[(step, {name: value})]`; stops on a non-finite loss."""
    for step, m in host_pending:
      if not np.isfinite(m["loss"]):
        raise FloatingPointError(
            f"Non-finite loss ({m['loss']}) at step {step} of fold "
            f"{self.index + 1} (test subject {self.subject}). Lower "
            "config.schedule.lr or check the input data; the last checkpoint "
            f"is in {self.dir}/checkpoints.")
    step, last = host_pending[-1]
    writer.scalars(step, {**{f"train/{k}": float(v) for k, v in last.items()},
                          "train/lr": float(schedule(step - 1))})
    return {k: float(v) for k, v in last.items()}

  def _select(self, state, best, step, writer):
    """Keeps the state with the best UF1 on the held-out training subjects."""
    probs = predict(self.eval_step, state.params, state.batch_stats, self.corpus,
                    self.val_clips, self.config, self.sharder)
    s = evaluation.scores([c.label for c in self.val_clips], probs.argmax(-1),
                          len(self.corpus.class_names))
    writer.scalars(step, {f"val/{k}": v for k, v in s.items()})
    if s["uf1"] > float(best["score"]):
      # Copies: the train step donates (and so deletes) the state's buffers.
      return {"params": jax.tree.map(jnp.copy, state.params),
              "batch_stats": jax.tree.map(jnp.copy, state.batch_stats),
              "score": jnp.asarray(s["uf1"], jnp.float32),
              "step": jnp.asarray(step, jnp.int32)}
    return best


def _close_quietly(runs) -> None:
  """On a stop (NaN, Ctrl-C, full disk): let in-flight async saves end, quietly.

  Without this the interpreter exits while orbax's save threads still run,
  and each prints its traceback after the one-line error.
  """
  for r in runs:
    try:
      r.mngr.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      log.debug("checkpoint save interrupted", exc_info=True)
    try:
      r.mngr.close()
      r.writer.close()
    except Exception:  # pylint: disable=broad-except
      log.debug("closing after a stop", exc_info=True)


@dataclasses.dataclass
class FoldRun:
  """Mutable training context of one fold."""
  state: Any
  best: Any
  start: int
  mngr: Any
  writer: Any
  step_rng: jax.Array


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def run_fold_group(folds: list[Fold], num_folds: int, vstep, state_sharding,
                   sharder: Sharder) -> list[dict[str, Any]]:
  """Trains K folds at once: stacked states, one vmapped step per iteration.

  Each fold keeps its own initialisation, data order, rng, checkpoints and
  selection, so its result equals the fold trained alone (to float
  tolerance). Folds resumed at different steps fall back to one by one.
  A group smaller than `protocol.parallel_folds` (the last one, or one with
  folds already done) is padded with copies of its last fold, whose outputs
  are dropped: the fold axis keeps its size, so it still splits over
  `mesh.folds` and the step is not compiled again.
  """
  todo = [f for f in folds if f.done() is None]
  if len(todo) <= 1:
    return [f.run(num_folds) for f in folds]
  config = folds[0].config
  runs = [f.prepare() for f in todo]
  if len({r.start for r in runs}) > 1:
    for r in runs:
      r.mngr.close()
      r.writer.close()
    return [f.run(num_folds) for f in folds]
  start = runs[0].start
  pad = max(int(config.protocol.parallel_folds) - len(runs), 0)
  stacked = jax.device_put(_stack([r.state for r in runs] + [runs[-1].state] * pad),
                           sharder.stacked(state_sharding))
  for r in runs:
    r.state = None  # the stacked copy is the live one
  rngs = jnp.stack([r.step_rng for r in runs] + [runs[-1].step_rng] * pad)
  iters = [f.batches(start) for f in todo]
  schedule = make_schedule(config)
  pending = []
  bar = tqdm(range(start, config.num_steps), initial=start, total=config.num_steps,
             desc=f"folds {todo[0].index + 1}-{todo[-1].index + 1}/{num_folds} "
                  f"({len(todo)} in parallel)",
             disable=not config.progress or jax.process_index() != 0,
             dynamic_ncols=True)

  def fold_state(k):
    return jax.device_put(jax.tree.map(lambda x: x[k], stacked), state_sharding)

  try:
    for step in bar:
      host_batches = [next(it) for it in iters]
      batch = sharder.put_batch(_stack_host(host_batches + host_batches[-1:] * pad),
                                stacked=True, process_local=True)
      stacked, metrics = vstep(stacked, batch, rngs)
      pending.append((step + 1, metrics))
      done = step + 1
      if done % config.log_every == 0 or done == config.num_steps:
        host = jax.device_get([m for _, m in pending])
        for k, (f, r) in enumerate(zip(todo, runs)):
          last = f.log_metrics([(s, {n: v[k] for n, v in m.items()})
                                for (s, _), m in zip(pending, host)],
                               r.writer, schedule)
        pending = []
        bar.set_postfix(loss=f"{last['loss']:.3f}")
      selecting = runs[0].best is not None and (
          done % config.protocol.eval_every == 0 or done == config.num_steps)
      if selecting or done % config.checkpoint_every == 0 or done == config.num_steps:
        for k, (f, r) in enumerate(zip(todo, runs)):
          f.after_step(r, fold_state(k), done)
  except BaseException:
    _close_quietly(runs)
    raise
  results = {f.subject: f.finish(r, fold_state(k))
             for k, (f, r) in enumerate(zip(todo, runs))}
  return [results.get(f.subject) or f.done() for f in folds]


def _stack_host(batches):
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def hash_seed(seed: int, name: str) -> int:
  """A stable 31-bit seed from the run seed and a name (no Python hash())."""
  import zlib  # pylint: disable=g-import-not-at-top
  return (zlib.crc32(f"{seed}:{name}".encode()) ^ seed) & 0x7FFFFFFF


# ----------------------------------------------------------------------------
# Entry point.


def run(config: ml_collections.ConfigDict, workdir: str) -> Any:
  """Runs `config.task`: "mer" here, anything else from `mer_jax.tasks`."""
  if config.task == "mer":
    return train_and_evaluate(config, workdir)
  import importlib  # pylint: disable=g-import-not-at-top
  try:
    module = importlib.import_module(f"mer_jax.tasks.{config.task}")
  except ModuleNotFoundError:
    raise ValueError(f"Unknown config.task {config.task!r}: 'mer' or a module "
                     "in mer_jax/tasks/.") from None
  config_lib.validate(config)
  run_identity.lock_workdir_multihost(workdir)
  return module.run(config, workdir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the configured protocol; returns (and writes) the pooled results."""
  config_lib.validate(config)
  workdir = os.path.abspath(workdir)
  # One writer per workdir (held until this process ends, or released below).
  acquired = run_identity.lock_workdir_multihost(workdir)
  t0 = time.time()
  sharder = make_sharder(config)  # before the corpus: config errors first

  corpus = sources.load_corpus(list(config.input.datasets),
                               config.input.data_dir or None,
                               auto_build=config.input.auto_build,
                               show_progress=config.progress,
                               class_order=config.input.class_order)
  num_classes = len(corpus.class_names)
  steps = build_steps(config, num_classes, sharder)
  model, tx, mesh = steps.model, steps.tx, sharder.mesh
  abstract_state, state_sharding = steps.abstract_state, steps.state_sharding
  train_step, eval_step = steps.train_step, steps.eval_step
  preview_step = None
  if config.get("preview_samples", 0) and has_preview(model, abstract_state, config):
    preview_step = jax.jit(make_preview_step(model),
                           in_shardings=(state_sharding.params,
                                         state_sharding.batch_stats, sharder.data),
                           out_shardings=sharder.data)

  folds = sources.loso_folds(corpus.subjects)
  if config.protocol.folds:
    wanted = set(config.protocol.folds)
    unknown = wanted - set(corpus.subjects)
    if unknown:
      raise ValueError(f"config.protocol.folds names unknown subjects {sorted(unknown)}; "
                       f"subjects are {corpus.subjects}")
    folds = [f for f in folds if f[1] in wanted]
  n_params = sum(x.size for x in jax.tree.leaves(abstract_state.params))
  log.info("%s on %s: %d classes %s, %d subjects, %d clips, %d params, %d devices",
           config.model_name, ",".join(corpus.names), num_classes,
           corpus.class_names, len(corpus.subjects), len(corpus.clips), n_params,
           mesh.size)

  init_params = None
  if config.init_from:
    init_params = checkpoints.load_params(config.init_from)
    # Shapes are all the report needs: no second real initialisation.
    _, used, new = checkpoints.merge_params(abstract_state.params, init_params)
    log.info("init_from %s: %d parameters loaded %s; %d new (fresh init) %s",
             config.init_from, len(used), used, len(new), new)
    if not used:
      raise ValueError(f"config.init_from={config.init_from}: no parameter "
                       "matches the model (paths or shapes differ).")

  fold_objs = [Fold(config=config, corpus=corpus, model=model, tx=tx,
                    train_step=train_step, eval_step=eval_step, sharder=sharder,
                    fold_index=i, test_subject=test_subject,
                    train_subjects=train_subjects, workdir=workdir,
                    init_params=init_params, preview_step=preview_step)
               for i, (train_subjects, test_subject) in enumerate(folds)]
  # Same setup as the run already in this workdir, or stop before any work.
  run_identity.check_and_record(
      workdir, run_identity.run_identity(
          config, config.input.data_dir or sources.default_data_dir()),
      [f.dir for f in fold_objs])
  k = steps.parallel_folds
  fold_results = []
  if k == 1:
    for fold in fold_objs:
      fold_results.append(fold.run(len(folds)))
  else:
    for g in range(0, len(fold_objs), k):
      fold_results.extend(run_fold_group(fold_objs[g:g + k], len(folds),
                                         steps.fold_train_step,
                                         state_sharding, sharder))

  summary = evaluation.summarize_folds(fold_results, num_classes)
  results = {
      "protocol": config.protocol.name,
      "selection": config.protocol.selection,
      "oracle": False,
      "dataset": ",".join(corpus.names),
      "model": config.model_name,
      "seed": config.seed,
      "class_names": list(corpus.class_names),
      "uf1": summary["uf1"], "uar": summary["uar"],
      "accuracy": summary["accuracy"], "n": summary["n"],
      "excluded_clips": corpus.excluded,
      "num_steps": config.num_steps,
      "num_params": int(n_params),
      "per_fold": [{**pf, "selected_step": r["selected_step"]}
                   for pf, r in zip(summary["per_fold"], fold_results)],
      "confusion": summary["confusion"],
  }
  if len(corpus.names) > 1:
    # A composite (MEGC 2019): each dataset's scores as well as the pooled ones.
    results["per_dataset"] = evaluation.per_dataset(fold_results, num_classes)
  if jax.process_index() == 0:
    checkpoints.write_json(os.path.join(workdir, "config.json"), config.to_dict())
    checkpoints.write_json(os.path.join(workdir, "results.json"), results)
    _write_predictions(os.path.join(workdir, "predictions.csv"), fold_results,
                       corpus.class_names)
    evaluation.plot_confusion(
        np.array(summary["confusion"]), corpus.class_names,
        os.path.join(workdir, "confusion.png"),
        f"{config.model_name} on {results['dataset']}, {config.protocol.name} "
        f"({config.protocol.selection})\nUF1 {results['uf1']:.3f}  UAR "
        f"{results['uar']:.3f}  n={results['n']}")
    with metric_writer_for(workdir) as w:
      w.scalars(0, {f"{config.protocol.name}/uf1": results["uf1"],
                    f"{config.protocol.name}/uar": results["uar"],
                    f"{config.protocol.name}/accuracy": results["accuracy"]})
      for i, pf in enumerate(results["per_fold"]):
        w.scalars(i, {"per_fold/uf1": pf["uf1"], "per_fold/uar": pf["uar"],
                      "per_fold/accuracy": pf["accuracy"]})
    print_summary(results, time.time() - t0)
  if acquired:
    run_identity.unlock_workdir(workdir)
  return results


class metric_writer_for:  # pylint: disable=invalid-name
  """Context manager for the run-level TensorBoard writer."""

  def __init__(self, workdir: str):
    self.w = metric_writer.SummaryWriter(os.path.join(workdir, "tensorboard", "summary"))

  def __enter__(self):
    return self.w

  def __exit__(self, *exc):
    self.w.close()


def _write_predictions(path: str, fold_results, class_names) -> None:
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["fold_subject", "sample_id", "label", "label_name", "pred",
                "pred_name"] + [f"p_{c}" for c in class_names])
    for r in fold_results:
      for sid, y, p, pr in zip(r["sample_ids"], r["labels"], r["preds"], r["probs"]):
        w.writerow([r["subject"], sid, y, class_names[y], p, class_names[p]]
                   + [f"{v:.6f}" for v in pr])


def print_summary(results: dict[str, Any], seconds: float) -> None:
  """Prints the per-fold table and the one-line pooled summary."""
  lines = [f"{'fold (test subject)':<32} {'n':>4} {'UF1':>6} {'UAR':>6} {'acc':>6} {'step':>6}"]
  for pf in results["per_fold"]:
    lines.append(f"{pf['subject']:<32} {pf['n']:>4} {pf['uf1']:>6.3f} "
                 f"{pf['uar']:>6.3f} {pf['accuracy']:>6.3f} {pf['selected_step']:>6}")
  lines.append("")
  lines.append(f"{'dataset':<22} {'model':<14} {'protocol':<10} {'selection':<10} "
               f"{'folds':>5} {'n':>5} {'UF1':>6} {'UAR':>6} {'acc':>6} {'time':>7}")
  lines.append(f"{results['dataset']:<22} {results['model']:<14} "
               f"{results['protocol']:<10} {results['selection']:<10} "
               f"{len(results['per_fold']):>5} {results['n']:>5} {results['uf1']:>6.3f} "
               f"{results['uar']:>6.3f} {results['accuracy']:>6.3f} {seconds:>6.0f}s")
  if results.get("per_dataset"):
    lines.append("")
    lines.append(f"{'per dataset (pooled over folds)':<32} {'subj':>5} {'n':>5} "
                 f"{'UF1':>6} {'UAR':>6} {'acc':>6}")
    rows = list(results["per_dataset"].items())
    rows.append(("overall", {"subjects": len(results["per_fold"]), "n": results["n"],
                             "uf1": results["uf1"], "uar": results["uar"],
                             "accuracy": results["accuracy"]}))
    for name, d in rows:
      lines.append(f"{name:<32} {d['subjects']:>5} {d['n']:>5} {d['uf1']:>6.3f} "
                   f"{d['uar']:>6.3f} {d['accuracy']:>6.3f}")
  print("\n".join(lines), flush=True)
