"""Jitted steps on a mesh: train, eval and preview; `predict` over clips.

`build_steps` is what `loso.train_and_evaluate` runs and what
`scripts/aot_compile.py` compiles for a TPU topology (one code path).
Nothing here knows a model: a model module may define `aux_losses` (extra
loss terms) and `preview(aux, batch)` (the picture drawn per test clip).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mer_jax import models
from mer_jax.data import pipeline
from mer_jax.training import state as state_lib
from mer_jax.training.sharding import Sharder
from mer_jax.training.state import TrainState


def variables(params, batch_stats) -> dict[str, Any]:
  """The `model.apply` variables (no `batch_stats` collection when empty)."""
  v = {"params": params}
  if batch_stats:
    v["batch_stats"] = batch_stats
  return v


def batch_inputs(model, batch) -> dict[str, Any]:
  """Batch entries a model takes besides the frames (`model.batch_inputs`)."""
  return {k: batch[k] for k in getattr(model, "batch_inputs", ()) if k in batch}


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Mean of `x` `[B]` over the real clips (`mask` 1) of a padded batch."""
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def make_train_step(model, tx, aux_losses: Callable | None,
                    aux_kwargs: dict[str, Any]):
  """`train_step(state, batch, rng) -> (state, metrics)`; rng is per fold."""

  def train_step(state: TrainState, batch: dict[str, jnp.ndarray],
                 rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    mask = batch["mask"]

    def loss_fn(params):
      mutable = ["batch_stats"] if state.batch_stats else False
      out = model.apply(variables(params, state.batch_stats), batch["frames"],
                        train=True, rngs={"dropout": step_rng}, mutable=mutable,
                        **batch_inputs(model, batch))
      (logits, aux), new_vars = out if mutable else (out, {})
      ce = optax.softmax_cross_entropy_with_integer_labels(
          logits.astype(jnp.float32), batch["label"])
      terms = {"ce": masked_mean(ce, mask)}
      if aux_losses is not None:
        terms.update(aux_losses(aux, batch, **aux_kwargs))
      loss = sum(terms.values())
      acc = masked_mean(jnp.argmax(logits, -1) == batch["label"], mask)
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
    logits, _ = model.apply(variables(params, batch_stats), batch["frames"],
                            train=False, **batch_inputs(model, batch))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return eval_step


def make_preview_step(model, preview: Callable):
  """`preview_step(params, batch_stats, batch) -> (image, target | None)`.

  `preview(aux, batch)` is the model module's hook: the picture the model
  makes of each clip `[B, H, W]` in [0, 1] and its target (or None).
  """

  def preview_step(params, batch_stats, batch):
    _, aux = model.apply(variables(params, batch_stats), batch["frames"],
                         train=False, **batch_inputs(model, batch))
    image, target = preview(aux, batch)
    return image.astype(jnp.float32), target

  return preview_step


@dataclasses.dataclass
class Steps:
  """Model, optimizer, state shapes / shardings and the jitted steps.

  train_step(state, batch, rng) -> (state, metrics); eval_step(params,
  batch_stats, batch) -> probs `[B, K]`; with `protocol.parallel_folds` = K
  > 1, fold_train_step is the vmapped train step on fold-stacked `[K, ...]`
  states, batches and rngs (else None); preview_step (models with a
  `preview` hook, when `config.preview_samples` > 0; else None).
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
  preview_step: Any = None


def build_steps(config: ml_collections.ConfigDict, num_classes: int,
                sharder: Sharder) -> Steps:
  """Builds (does not compile) everything a run needs besides the data."""
  model_module = models.get_module(config.model_name)
  # "auto" model settings resolve for the devices of the mesh (a TPU
  # topology's under scripts/aot_compile.py).
  model = models.get_model(config.model_name, num_classes,
                           platform=sharder.mesh.devices.flat[0].platform,
                           **config.model.to_dict())
  tx = state_lib.make_optimizer(config)
  aux_losses = getattr(model_module, "aux_losses", None)
  abstract_state = jax.eval_shape(
      lambda: state_lib.create_train_state(model, tx, config, jax.random.PRNGKey(0)))
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
  preview = getattr(model_module, "preview", None)
  preview_step = None
  if config.get("preview_samples", 0) and preview is not None:
    preview_step = jax.jit(make_preview_step(model, preview),
                           in_shardings=(state_sharding.params,
                                         state_sharding.batch_stats, sharder.data),
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
               fold_train_step=fold_train_step, parallel_folds=k,
               preview_step=preview_step)


def predict(eval_step, params, batch_stats, corpus, clips, config,
            sharder: Sharder) -> np.ndarray:
  """Class probabilities `[len(clips), K]`, each clip scored once."""
  probs = []
  for batch in pipeline.eval_batches(corpus, clips, config.input,
                                     config.input.eval_batch_size):
    mask = batch["mask"] > 0
    p = sharder.fetch(eval_step(params, batch_stats, sharder.put_batch(batch)))
    probs.append(p[mask])
  return np.concatenate(probs) if probs else np.zeros((0, len(corpus.class_names)))
