"""MA2MI pretraining (`config.task = "ma2mi_pretrain"`): future frames from macro clips.

`run(config, workdir)` trains `mer_jax.models.ma2mi.Model` (MIACNet's two
branches + a predictor/decoder) without labels on pairs from macro-expression
clips, then writes the branches' parameters where `config.init_from` reads
them:

  <workdir>/pretrained/          orbax {"params": {"position_branch": ...,
                                                   "action_branch": ...}}
  <workdir>/loss_curve.png       + loss_history.json
  <workdir>/tensorboard/pretrain/ losses, lr, images: I[t] | true I[t+k+m] |
                                 predicted | true change | predicted change
  <workdir>/pretrain_checkpoints/ orbax CheckpointManager, every
                                 `config.checkpoint_every` steps and the last
                                 (`config.keep_checkpoints` kept):
                                 <step>/state  PretrainState (params,
                                   batch_stats, opt_state, step, ema_action)
                                 <step>/log    JSON {"history": the logged
                                   averages so far, "pending": per-step metrics
                                   not yet averaged}
                                 mer_jax_meta.json  task and config
  <workdir>/pretrain_done.json   written last: the run finished

Resume: a rerun in the same workdir restores the newest checkpoint that
restores (a corrupt newer one is moved to <workdir>/corrupt_checkpoints/),
restarts the batch stream at that step (batch i depends on (config.seed, i)
only), keeps the loss history up to that step and marks the restart in
TensorBoard, which then shows each step once. The exported branches are bit
for bit those of an uninterrupted run. A rerun of a finished run (its
pretrain_done.json exists) returns its result without training. The
schedule depends on `config.num_steps`: resume with the same config.

Sampling and inputs: `mer_jax/data/macro_pairs.py`.

Losses (weights in `config.pretrain`):
  pixel: normalised MSE of the predicted change,
    sum((pred - (I[t+k+m] - I[t]))^2) / sum((I[t+k+m] - I[t])^2);
    1.0 = predicting "no change", so the curve reads as a fraction of the
    motion energy still unexplained.
  latent (optional, `latent_weight` > 0): mean (over cells and channels)
    squared difference between the LayerNorm-ed predicted latent and the
    LayerNorm-ed features of an EMA copy of the action branch applied to
    I[t+k+m] - I[t] (stop-gradient; momentum `ema_momentum`; the EMA branch
    uses the online branch's BatchNorm in training mode). ~2 = uncorrelated.
    The pixel term stays on as the anchor against collapse.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mer_jax import checkpoints
from mer_jax import metric_writer
from mer_jax import models
from mer_jax import plots
from mer_jax.data import macro_pairs
from mer_jax.data import pipeline
from mer_jax.training import loop
from mer_jax.training import sharding
from mer_jax.training import state as state_lib

log = logging.getLogger(__name__)

BRANCHES = ("position_branch", "action_branch")
PRETRAINED_DIR = "pretrained"  # what config.init_from reads
CHECKPOINT_DIR = "pretrain_checkpoints"
DONE_FILE = "pretrain_done.json"  # written last: the run finished

DEFAULTS = {
    "source": "tfds",  # the only source: config.input.datasets' builders
    "data_seed": 0,
    "max_gap_ms": 160.0,
    "future_gap_ms": 100.0,
    "within_expression": True,
    "flip": True,
    "pixel_weight": 1.0,
    "latent_weight": 0.0,
    "ema_momentum": 0.99,
    "image_every": 200,
    "num_images": 4,
}


def pretrain_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.pretrain` over `DEFAULTS`; unknown keys are an error."""
  given = config.pretrain.to_dict()
  unknown = sorted(set(given) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"Unknown config.pretrain key(s) {unknown}; known: "
                     f"{sorted(DEFAULTS)}")
  return {**DEFAULTS, **given}


# ----------------------------------------------------------------------------
# Training.


@flax.struct.dataclass
class PretrainState:
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_action: Any  # EMA copy of params["action_branch"] (latent target)


def create_state(model, tx, config: ml_collections.ConfigDict,
                 rng: jax.Array) -> PretrainState:
  """Fresh state from `rng`: the model initialised on `[1, H, W, C]` frames."""
  b, _, h, w, c = pipeline.clip_shape(config.input)
  shape = (b, h, w, c)
  variables = model.init({"params": rng}, jnp.zeros(shape), jnp.zeros(shape),
                         train=False)
  params = variables["params"]
  return PretrainState(step=jnp.zeros((), jnp.int32), params=params,
                       batch_stats=variables["batch_stats"],
                       opt_state=tx.init(params),
                       ema_action=jax.tree.map(jnp.copy, params["action_branch"]))


def _layer_norm(x, eps=1e-6):
  x = x.astype(jnp.float32)
  mu = x.mean(-1, keepdims=True)
  return (x - mu) * jax.lax.rsqrt(x.var(-1, keepdims=True) + eps)


def make_train_step(model, tx, settings: dict[str, Any]):
  """`step(state, batch, rng) -> (state, metrics, prediction residual)`."""
  target_branch = model.action_branch_module(name=None)
  w_pix, w_lat = settings["pixel_weight"], settings["latent_weight"]
  momentum = settings["ema_momentum"]

  def train_step(state: PretrainState, batch, rng):
    del rng  # the model has no dropout; kept for a uniform signature
    diff = batch["frame_tk"] - batch["frame_t"]
    change = batch["frame_future"] - batch["frame_t"]

    def loss_fn(params):
      (residual, aux), new_vars = model.apply(
          {"params": params, "batch_stats": state.batch_stats},
          batch["frame_t"], diff, train=True, mutable=["batch_stats"])
      pixel = jnp.sum((residual - change)**2) / (jnp.sum(change**2) + 1e-6)
      terms = {"pixel": pixel}
      if w_lat:
        (target, _), _ = target_branch.apply(
            {"params": state.ema_action,
             "batch_stats": state.batch_stats["action_branch"]},
            change, train=True, mutable=["batch_stats"])
        target = jax.lax.stop_gradient(target)
        # Mean over channels too: 0 = exact, ~2 = uncorrelated, any width.
        terms["latent"] = jnp.mean(
            (_layer_norm(aux["latent"]) - _layer_norm(target))**2)
      loss = w_pix * pixel + w_lat * terms.get("latent", 0.0)
      return loss, (terms, new_vars["batch_stats"], residual)

    (loss, (terms, batch_stats, residual)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = jax.tree.map(lambda e, p: momentum * e + (1 - momentum) * p,
                       state.ema_action, params["action_branch"])
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
               **{f"loss_{k}": v for k, v in terms.items()}}
    new = state.replace(step=state.step + 1, params=params,
                        batch_stats=batch_stats, opt_state=opt_state,
                        ema_action=ema)
    return new, metrics, residual

  return train_step


@dataclasses.dataclass(frozen=True)
class PretrainSteps:
  """What `build_step` builds (not compiled): also what AOT compiles."""
  model: Any
  tx: optax.GradientTransformation
  abstract_state: PretrainState
  state_sharding: PretrainState
  train_step: Any  # jitted `(state, batch, rng) -> (state, metrics, residual)`


def build_step(config: ml_collections.ConfigDict,
               sharder: sharding.Sharder) -> PretrainSteps:
  """The model, optimizer, state shardings and the sharded, jitted step."""
  model = models.get_model(config.model_name, task=config.task,
                           **config.model.to_dict())
  tx = state_lib.make_optimizer(config)
  abstract_state = jax.eval_shape(
      lambda: create_state(model, tx, config, jax.random.PRNGKey(0)))
  state_sharding = sharder.tree(abstract_state)
  train_step = jax.jit(
      make_train_step(model, tx, pretrain_settings(config)),
      in_shardings=(state_sharding, sharder.data, sharder.replicated),
      out_shardings=(state_sharding, sharder.replicated, sharder.data),
      donate_argnums=(0,))
  return PretrainSteps(model, tx, abstract_state, state_sharding, train_step)


def save_branches(params: Any, path: str, config: ml_collections.ConfigDict) -> None:
  """Writes the branches (`{"params": {branch: ...}}`) for `config.init_from`,
  in the one checkpoint format (`checkpoints.save_model`)."""
  checkpoints.save_model(path, {"params": {b: params[b] for b in BRANCHES}}, {
      "task": "ma2mi_pretrain", "config": config.to_dict()}, step=config.num_steps)


# ----------------------------------------------------------------------------
# Checkpoints, resume and the finished-run marker.


# Keys that do not change the trained weights or the logged history.
_RESUME_INDIFFERENT = {"progress", "checkpoint_every", "keep_checkpoints"}


def _config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """Flattened config keys whose values differ (JSON-normalised)."""
  flat = lambda d: flax.traverse_util.flatten_dict(json.loads(json.dumps(d)), sep=".")
  a, b = flat(old), flat(new)
  return sorted(k for k in set(a) | set(b)
                if a.get(k) != b.get(k) and k not in _RESUME_INDIFFERENT)


def _finished(workdir: str, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The result of a run that already finished in `workdir`, else None."""
  path = os.path.join(workdir, DONE_FILE)
  if not os.path.exists(path):
    return None
  done = checkpoints.read_json(path)
  pretrained = os.path.join(workdir, PRETRAINED_DIR)
  if done.get("num_steps") != config.num_steps:
    log.warning("%s finished at num_steps=%s (config.num_steps=%d); not "
                "retraining. Use a new workdir to train again.", workdir,
                done.get("num_steps"), config.num_steps)
  log.info("MA2MI pretraining in %s already finished (%s steps); branches are "
           "in %s", workdir, done.get("num_steps"), pretrained)
  history = checkpoints.read_json(os.path.join(workdir, "loss_history.json"))
  return {"history": history, "seconds": done.get("seconds"),
          "pretrained": pretrained, "resumed_from": done.get("num_steps"),
          "already_done": True}


def _checkpoint_log(history: list[dict[str, float]],
                    pending: list[dict[str, Any]]) -> dict[str, Any]:
  """The loss history and the not-yet-averaged metrics of a checkpoint."""
  return {"history": history,
          "pending": [{k: float(v) for k, v in m.items()} for m in pending]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Pretrains (or resumes) and saves the branches; returns the final metrics.

  Sharded as MER training is (`training.sharding`: the batch split over every
  device of `config.mesh`, parameters replicated or FSDP-split) and run by
  the same step loop (`training.loop`). The result holds `history` (one
  entry per logged step), `seconds` (this invocation), `pretrained` (the
  exported directory), `resumed_from` (the restored checkpoint step: 0 for a
  fresh run, num_steps when the run had already finished) and `already_done`.
  """
  settings = pretrain_settings(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  finished = _finished(workdir, config)
  if finished is not None:
    return finished
  t0 = time.time()
  clips = macro_pairs.load_clips(config, settings)
  log.info("MA2MI pretraining on %d %s clips (%.0fs to load)", len(clips),
           settings["source"], time.time() - t0)

  sharder = sharding.make_sharder(config, batch_sizes=("batch_size",))
  built = build_step(config, sharder)
  schedule = state_lib.make_schedule(config)
  rng = jax.random.PRNGKey(config.seed)
  state = create_state(built.model, built.tx, config, rng)
  state = jax.device_put(state, built.state_sharding)

  ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
  mngr = checkpoints.manager(ckpt_dir, config.keep_checkpoints)
  meta_path = os.path.join(ckpt_dir, checkpoints.META_FILE)
  if os.path.exists(meta_path):
    changed = _config_changes(checkpoints.read_json(meta_path).get("config", {}),
                              config.to_dict())
    if changed and checkpoints.step_dirs(ckpt_dir):
      log.warning("Resuming %s with a config that differs from the "
                  "checkpointed run's in %s: the result will not match an "
                  "uninterrupted run of either config.", ckpt_dir, changed)
  checkpoints.write_meta(ckpt_dir, {"task": "ma2mi_pretrain", "config": config.to_dict()})
  # The newest step that restores; a corrupt newer one is warned about and
  # moved to <workdir>/corrupt_checkpoints/ so it can be re-saved.
  start, restored = checkpoints.restore_or_init(
      mngr, {"state": state}, {"log": _checkpoint_log([], [])})
  if start > config.num_steps:
    raise ValueError(
        f"{ckpt_dir} holds step {start} > config.num_steps="
        f"{config.num_steps}; use a new workdir or the original num_steps.")
  state = restored["state"]
  history = list(restored["log"]["history"])
  # float32, as fetched from the device: the averages match bit for bit.
  restored_pending = restored["log"]["pending"]
  pending = [(start - len(restored_pending) + 1 + i,
              {k: np.float32(v) for k, v in m.items()})
             for i, m in enumerate(restored_pending)]
  if start:
    log.info("MA2MI pretraining resumed from step %d of %d", start,
             config.num_steps)

  step_fn = built.train_step
  writer = metric_writer.SummaryWriter(os.path.join(workdir, "tensorboard", "pretrain"))
  if start:
    writer.restart(start + 1)

  def log_fn(host_pending):
    done = host_pending[-1][0]
    avg = {k: float(np.mean([m[k] for _, m in host_pending]))
           for k in host_pending[0][1]}
    history.append({"step": done, **avg})
    writer.scalars(done, {**{f"pretrain/{k}": v for k, v in avg.items()},
                          "pretrain/lr": float(schedule(done - 1))})
    log.info("MA2MI step %d/%d: %s", done, config.num_steps,
             " ".join(f"{k}={v:.4f}" for k, v in avg.items()))
    return {"loss": f"{avg['loss']:.4f}"}

  def after_step(done, state, batch, outputs):
    if (settings["image_every"] and done % settings["image_every"] == 0) or \
        done == config.num_steps:
      host = {k: sharder.fetch(v) for k, v in batch.items()}
      writer.image(done, "pretrain/t_future_pred_change_predchange",
                   plots.future_frames_grid(host, sharder.fetch(outputs[0]),
                                            config.input.mean, config.input.std,
                                            settings["num_images"]))
    if done % config.checkpoint_every == 0 or done == config.num_steps:
      pending[:] = zip([s for s, _ in pending],
                       jax.device_get([m for _, m in pending]))
      writer.flush()  # the events up to a checkpoint survive a kill
      checkpoints.save_step(mngr, done, {"state": state}, {
          "log": _checkpoint_log(history, [m for _, m in pending])})

  # Every process draws the same global batch (seeded); each feeds its slice.
  state = loop.train_loop(
      lambda s, b: step_fn(s, b, rng), state,
      (sharder.put_batch(b) for b in macro_pairs.batches(
          clips, config, settings, seed=config.seed, start_step=start)),
      start=start, num_steps=config.num_steps, log_every=config.log_every,
      log_fn=log_fn, after_step=after_step,
      on_stop=lambda: loop.close_quietly([mngr], [writer]),
      names=["MA2MI pretraining"], checkpoint_dirs=[ckpt_dir], pending=pending,
      desc="MA2MI pretraining", progress=config.progress)
  mngr.wait_until_finished()
  mngr.close()
  writer.close()

  # Exported from the final state (restored or trained): the same bits
  # whether or not the run was interrupted. The marker goes last.
  pretrained = os.path.join(workdir, PRETRAINED_DIR)
  save_branches(state.params, pretrained, config)
  if jax.process_index() == 0:
    checkpoints.write_json(os.path.join(workdir, "loss_history.json"), history)
    if history:
      plots.plot_losses(history, os.path.join(workdir, "loss_curve.png"))
  result = {"history": history, "seconds": time.time() - t0,
            "pretrained": pretrained, "resumed_from": start,
            "already_done": False}
  if jax.process_index() == 0:
    checkpoints.write_json(os.path.join(workdir, DONE_FILE), {
        "num_steps": config.num_steps, "seconds": result["seconds"],
        "resumed_from": start, "final": history[-1] if history else None})
  log.info("MA2MI done in %.0fs; branches saved to %s", result["seconds"],
           result["pretrained"])
  return result
