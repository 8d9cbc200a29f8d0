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
  folds/<subject>/dynamic_images.png             frames, target and the
                                                 model's picture of a few
                                                 test clips (models with a
                                                 `preview` hook)
  folds/<subject>/checkpoints/                   orbax, latest (and best)
  tensorboard/<subject>/                         loss, lr, val/test metrics,
                                                 test/dynamic_images
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mer_jax import checkpoints
from mer_jax import config_lib
from mer_jax import evaluation
from mer_jax import metric_writer
from mer_jax import plots
from mer_jax import run_identity
from mer_jax.data import pipeline
from mer_jax.data import sources
from mer_jax.training import loop
from mer_jax.training import report
from mer_jax.training import sharding
from mer_jax.training import state as state_lib
from mer_jax.training import steps as steps_lib

log = logging.getLogger(__name__)


def hash_seed(seed: int, name: str) -> int:
  """A stable 31-bit seed from the run seed and a name (no Python hash())."""
  return (zlib.crc32(f"{seed}:{name}".encode()) ^ seed) & 0x7FFFFFFF


@dataclasses.dataclass
class FoldSplit:
  """Which clips fold `index` trains, selects and tests on, and its seed."""
  index: int
  test_subject: str
  seed: int
  val_subjects: list[str]
  train_clips: list[Any]
  val_clips: list[Any]
  test_clips: list[Any]


def split_fold(config: ml_collections.ConfigDict, corpus: sources.Corpus,
               index: int, train_subjects: list[str], test_subject: str) -> FoldSplit:
  """The fold's clips; with `inner_val` selection, validation subjects are
  drawn from the training subjects (never the test subject)."""
  seed = hash_seed(config.seed, test_subject)
  val = []
  if config.protocol.selection == "inner_val":
    val = sources.inner_validation_subjects(
        train_subjects, config.protocol.val_subjects, seed)
  return FoldSplit(
      index=index, test_subject=test_subject, seed=seed, val_subjects=val,
      train_clips=[c for c in corpus.clips
                   if c.subject in train_subjects and c.subject not in val],
      val_clips=[c for c in corpus.clips if c.subject in val],
      test_clips=[c for c in corpus.clips if c.subject == test_subject])


@dataclasses.dataclass
class FoldRun:
  """Mutable training context of one fold."""
  state: Any
  best: Any
  start: int
  mngr: Any
  writer: Any
  step_rng: jax.Array


class Fold:
  """Trains and tests one LOSO fold, resuming from its latest checkpoint."""

  def __init__(self, config: ml_collections.ConfigDict, corpus: sources.Corpus,
               steps: steps_lib.Steps, sharder: sharding.Sharder,
               split: FoldSplit, workdir: str, init_params: Any = None):
    self.config = config
    self.corpus = corpus
    self.steps = steps
    self.sharder = sharder
    self.split = split
    self.init_params = init_params
    self.index = split.index
    self.subject = split.test_subject
    self.dir = os.path.join(workdir, "folds", checkpoints.fold_dirname(self.subject))
    self.tb_dir = os.path.join(workdir, "tensorboard", checkpoints.fold_dirname(self.subject))
    self.checkpoint_dir = os.path.join(os.path.abspath(self.dir), "checkpoints")
    self.name = f"fold {self.index + 1} (test subject {self.subject})"

  @property
  def result_path(self) -> str:
    return os.path.join(self.dir, "result.json")

  def finished_result(self) -> dict[str, Any] | None:
    """The fold's result if it already finished (a resumed run skips it)."""
    if os.path.exists(self.result_path):
      return checkpoints.read_json(
          self.result_path, "delete it to test the fold again from its checkpoints")
    return None

  def restore_or_start(self) -> FoldRun:
    """Fresh or restored state, checkpoint manager and writer of this fold."""
    config = self.config
    init_rng, step_rng = jax.random.split(jax.random.PRNGKey(self.split.seed))
    state = state_lib.create_train_state(self.steps.model, self.steps.tx, config,
                                         init_rng, self.init_params)
    state = jax.device_put(state, self.sharder.tree(state))
    best = None
    if config.protocol.selection == "inner_val":
      best = {"params": jax.tree.map(jnp.copy, state.params),
              "batch_stats": jax.tree.map(jnp.copy, state.batch_stats),
              "score": jnp.asarray(-1.0, jnp.float32),
              "step": jnp.asarray(0, jnp.int32)}
    mngr = checkpoints.manager(self.checkpoint_dir, config.keep_checkpoints)
    # The newest step that restores; a corrupt newer one is warned about and
    # moved to folds/<subject>/corrupt_checkpoints/ so it can be re-saved.
    start, restored = checkpoints.restore_or_init(
        mngr, {"state": state} if best is None else {"state": state, "best": best})
    state, best = restored["state"], restored.get("best")
    if start:
      log.info("fold %s: resumed from step %d", self.subject, start)
    # A checkpoint directory is self-describing: mer_jax.load_model needs
    # nothing else to rebuild the model and its input pipeline. Written only
    # after the restore succeeded (atomically), so a failed run never
    # relabels good checkpoints.
    checkpoints.write_meta(self.checkpoint_dir, {
        "config": config.to_dict(), "class_names": list(self.corpus.class_names),
        "test_subject": self.subject, "train_subjects": sorted(
            {c.subject for c in self.split.train_clips}),
        "selection": config.protocol.selection})
    writer = metric_writer.SummaryWriter(self.tb_dir)
    if start:
      writer.restart(start + 1)  # drop what a killed run logged past `start`
    return FoldRun(state=state, best=best, start=start, mngr=mngr,
                   writer=writer, step_rng=step_rng)

  def batches(self, start: int):
    """Host training batches from step `start` (this process' rows)."""
    return pipeline.train_dataset(
        self.corpus, self.split.train_clips, self.config.input,
        self.config.input.batch_size, seed=self.split.seed, start_step=start,
        shard_index=jax.process_index(), shard_count=jax.process_count())

  def select_and_save(self, run: FoldRun, state, done: int) -> None:
    """Selection and checkpointing after step `done` (1-based), at their cadence."""
    config = self.config
    if run.best is not None and (done % config.protocol.eval_every == 0
                                 or done == config.num_steps):
      run.best = self._select(state, run.best, done, run.writer)
    if done % config.checkpoint_every == 0 or done == config.num_steps:
      checkpoints.save_step(run.mngr, done, {"state": state} if run.best is None
                            else {"state": state, "best": run.best})

  def log_metrics(self, run: FoldRun, host_pending: loop.HostMetrics) -> dict[str, float]:
    """Writes the last of the fetched metrics `[(step, {name: value})]`."""
    step, last = host_pending[-1]
    lr = float(state_lib.make_schedule(self.config)(step - 1))
    run.writer.scalars(step, {**{f"train/{k}": float(v) for k, v in last.items()},
                              "train/lr": lr})
    return {k: float(v) for k, v in last.items()}

  def train_and_test(self, num_folds: int) -> dict[str, Any]:
    """Trains (or resumes) and tests this fold alone."""
    result = self.finished_result()
    if result is not None:
      return result
    config = self.config
    run = self.restore_or_start()

    def log_fn(host_pending):
      last = self.log_metrics(run, host_pending)
      return {"loss": f"{last['loss']:.3f}", "acc": f"{last['accuracy']:.2f}"}

    state = loop.train_loop(
        lambda s, b: self.steps.train_step(s, b, run.step_rng), run.state,
        (self.sharder.put_batch(b, process_local=True)
         for b in self.batches(run.start)),
        start=run.start, num_steps=config.num_steps, log_every=config.log_every,
        log_fn=log_fn,
        after_step=lambda done, s, *_: self.select_and_save(run, s, done),
        on_stop=lambda: loop.close_quietly([run.mngr], [run.writer]),
        names=[self.name], checkpoint_dirs=[self.checkpoint_dir],
        desc=f"fold {self.index + 1}/{num_folds} {self.subject}",
        progress=config.progress)
    return self.test(run, state)

  def test(self, run: FoldRun, state) -> dict[str, Any]:
    """Tests the selected model on the left-out subject; writes result.json."""
    config = self.config
    run.mngr.wait_until_finished()
    run.mngr.close()
    if run.best is not None:
      params, batch_stats = run.best["params"], run.best["batch_stats"]
      selected_step = int(run.best["step"])
    else:
      params, batch_stats, selected_step = state.params, state.batch_stats, config.num_steps
    test_clips = self.split.test_clips
    probs = steps_lib.predict(self.steps.eval_step, params, batch_stats, self.corpus,
                              test_clips, config, self.sharder)
    preds = probs.argmax(-1)
    labels = [c.label for c in test_clips]
    fold_scores = evaluation.scores(labels, preds, len(self.corpus.class_names))
    run.writer.scalars(config.num_steps, {f"test/{k}": v for k, v in fold_scores.items()})
    if self.steps.preview_step is not None:
      self.write_preview(run.writer, params, batch_stats, preds, selected_step)
    run.writer.close()
    result = {
        "subject": self.subject, "selected_step": selected_step,
        "val_subjects": self.split.val_subjects, "n_train": len(self.split.train_clips),
        "sample_ids": [c.sample_id for c in test_clips],
        "labels": labels, "preds": preds.tolist(),
        "probs": np.round(probs, 6).tolist(),
    }
    if jax.process_index() == 0:
      checkpoints.write_json(self.result_path, result)
    return result

  def write_preview(self, writer, params, batch_stats, preds, step: int) -> None:
    """`dynamic_images.png` and TensorBoard `test/dynamic_images`.

    The first `config.preview_samples` test clips: their frames, the target
    and the model's picture (its `preview` hook), labelled with the fold's
    predictions `preds`. One forward pass on one small batch.
    """
    wanted = self.config.get("preview_samples", 0)
    n = min(wanted, len(self.split.test_clips))
    if n <= 0:
      return
    clips = self.split.test_clips[:n]
    # A multiple of the data-parallel size; the same shape every fold (one compile).
    size = -(-wanted // self.sharder.size) * self.sharder.size
    (batch,) = list(pipeline.eval_batches(self.corpus, clips, self.config.input, size))
    image, target = self.steps.preview_step(params, batch_stats,
                                            self.sharder.put_batch(batch))
    image = self.sharder.fetch(image)
    target = None if target is None else self.sharder.fetch(target)
    if jax.process_index() != 0:
      return
    grid = plots.dynamic_image_grid(
        batch["frames"][:n], None if target is None else target[:n], image[:n],
        labels=[c.label for c in clips], pred_labels=preds[:n],
        class_names=self.corpus.class_names,
        row_names=[c.sample_id for c in clips],
        title=f"{self.config.model_name}, test subject {self.subject}, step {step}")
    plots.save_png(grid, os.path.join(self.dir, "dynamic_images.png"))
    writer.image(self.config.num_steps, "test/dynamic_images", grid)

  def _select(self, state, best, step, writer):
    """Keeps the state with the best UF1 on the held-out training subjects."""
    val_clips = self.split.val_clips
    probs = steps_lib.predict(self.steps.eval_step, state.params, state.batch_stats,
                              self.corpus, val_clips, self.config, self.sharder)
    s = evaluation.scores([c.label for c in val_clips], probs.argmax(-1),
                          len(self.corpus.class_names))
    writer.scalars(step, {f"val/{k}": v for k, v in s.items()})
    if s["uf1"] > float(best["score"]):
      # Copies: the train step donates (and so deletes) the state's buffers.
      return {"params": jax.tree.map(jnp.copy, state.params),
              "batch_stats": jax.tree.map(jnp.copy, state.batch_stats),
              "score": jnp.asarray(s["uf1"], jnp.float32),
              "step": jnp.asarray(step, jnp.int32)}
    return best


def run_fold_group(folds: list[Fold], num_folds: int, steps: steps_lib.Steps,
                   sharder: sharding.Sharder) -> list[dict[str, Any]]:
  """Trains K folds at once: stacked states, one vmapped step per iteration.

  Each fold keeps its own initialisation, data order, rng, checkpoints and
  selection, so its result equals the fold trained alone (to float
  tolerance). Folds resumed at different steps fall back to one by one.
  A group smaller than `protocol.parallel_folds` (the last one, or one with
  folds already done) is padded with copies of its last fold, whose outputs
  are dropped: the fold axis keeps its size, so it still splits over
  `mesh.folds` and the step is not compiled again.
  """
  todo = [f for f in folds if f.finished_result() is None]
  if len(todo) <= 1:
    return [f.train_and_test(num_folds) for f in folds]
  config = folds[0].config
  runs = [f.restore_or_start() for f in todo]
  if len({r.start for r in runs}) > 1:
    for r in runs:
      r.mngr.close()
      r.writer.close()
    return [f.train_and_test(num_folds) for f in folds]
  start = runs[0].start
  pad = max(int(config.protocol.parallel_folds) - len(runs), 0)
  state_sharding = steps.state_sharding
  stacked = jax.device_put(loop.stack([r.state for r in runs] + [runs[-1].state] * pad),
                           sharder.stacked(state_sharding))
  for r in runs:
    r.state = None  # the stacked copy is the live one
  rngs = jnp.stack([r.step_rng for r in runs] + [runs[-1].step_rng] * pad)
  iters = [f.batches(start) for f in todo]

  def batches():
    while True:
      host = [next(it) for it in iters]
      yield sharder.put_batch(loop.stack(host + host[-1:] * pad, np),
                              stacked=True, process_local=True)

  def fold_state(stacked, k):
    return jax.device_put(jax.tree.map(lambda x: x[k], stacked), state_sharding)

  def log_fn(host_pending):
    for k, (f, r) in enumerate(zip(todo, runs)):
      last = f.log_metrics(r, [(s, {n: v[k] for n, v in m.items()})
                               for s, m in host_pending])
    return {"loss": f"{last['loss']:.3f}"}

  def after_step(done, stacked, *_):
    selecting = runs[0].best is not None and (
        done % config.protocol.eval_every == 0 or done == config.num_steps)
    if selecting or done % config.checkpoint_every == 0 or done == config.num_steps:
      for k, (f, r) in enumerate(zip(todo, runs)):
        f.select_and_save(r, fold_state(stacked, k), done)

  stacked = loop.train_loop(
      lambda s, b: steps.fold_train_step(s, b, rngs), stacked, batches(),
      start=start, num_steps=config.num_steps, log_every=config.log_every,
      log_fn=log_fn, after_step=after_step,
      on_stop=lambda: loop.close_quietly([r.mngr for r in runs],
                                         [r.writer for r in runs]),
      names=[f.name for f in todo] + [todo[-1].name] * pad,
      checkpoint_dirs=[f.checkpoint_dir for f in todo] + [todo[-1].checkpoint_dir] * pad,
      desc=f"folds {todo[0].index + 1}-{todo[-1].index + 1}/{num_folds} "
           f"({len(todo)} in parallel)",
      progress=config.progress)
  results = {f.subject: f.test(r, fold_state(stacked, k))
             for k, (f, r) in enumerate(zip(todo, runs))}
  return [results.get(f.subject) or f.finished_result() for f in folds]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the configured protocol; returns (and writes) the pooled results."""
  config_lib.validate(config)
  workdir = os.path.abspath(workdir)
  # One writer per workdir (held until this process ends, or released below).
  acquired = run_identity.lock_workdir_multihost(workdir)
  t0 = time.time()
  sharder = sharding.make_sharder(config)  # before the corpus: config errors first

  corpus = sources.load_corpus(list(config.input.datasets),
                               config.input.data_dir or None,
                               auto_build=config.input.auto_build,
                               show_progress=config.progress,
                               class_order=config.input.class_order)
  num_classes = len(corpus.class_names)
  steps = steps_lib.build_steps(config, num_classes, sharder)

  folds = sources.loso_folds(corpus.subjects)
  if config.protocol.folds:
    wanted = set(config.protocol.folds)
    unknown = wanted - set(corpus.subjects)
    if unknown:
      raise ValueError(f"config.protocol.folds names unknown subjects {sorted(unknown)}; "
                       f"subjects are {corpus.subjects}")
    folds = [f for f in folds if f[1] in wanted]
  n_params = sum(x.size for x in jax.tree.leaves(steps.abstract_state.params))
  log.info("%s on %s: %d classes %s, %d subjects, %d clips, %d params, %d devices",
           config.model_name, ",".join(corpus.names), num_classes,
           corpus.class_names, len(corpus.subjects), len(corpus.clips), n_params,
           sharder.mesh.size)

  init_params = None
  if config.init_from:
    init_params = checkpoints.load_params(config.init_from)
    # Shapes are all the report needs: no second real initialisation.
    _, used, new = checkpoints.merge_params(steps.abstract_state.params, init_params)
    log.info("init_from %s: %d parameters loaded %s; %d new (fresh init) %s",
             config.init_from, len(used), used, len(new), new)
    if not used:
      raise ValueError(f"config.init_from={config.init_from}: no parameter "
                       "matches the model (paths or shapes differ).")

  fold_objs = [Fold(config, corpus, steps, sharder,
                    split_fold(config, corpus, i, train_subjects, test_subject),
                    workdir, init_params)
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
      fold_results.append(fold.train_and_test(len(folds)))
  else:
    for g in range(0, len(fold_objs), k):
      fold_results.extend(run_fold_group(fold_objs[g:g + k], len(folds), steps, sharder))

  results = report.pooled_results(config, corpus, fold_results, int(n_params))
  if jax.process_index() == 0:
    report.write_run(workdir, config, corpus, results, fold_results)
    report.print_summary(results, time.time() - t0)
  if acquired:
    run_identity.unlock_workdir(workdir)
  return results
