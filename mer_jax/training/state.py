"""Train state, optimizer and learning-rate schedule from the config."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from mer_jax import checkpoints
from mer_jax.data import pipeline


@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any


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


def create_train_state(model, tx, config, rng: jax.Array,
                       init_params: Any = None) -> TrainState:
  """Initialises parameters from `rng` (same rng -> same state).

  `init_params` (from `config.init_from`) replaces every parameter whose path
  and shape match.
  """
  variables = model.init({"params": rng, "dropout": rng},
                         jnp.zeros(pipeline.clip_shape(config.input), jnp.float32), train=False)
  params = variables["params"]
  if init_params is not None:
    params, _, _ = checkpoints.merge_params(params, init_params)
    params = jax.tree.map(jnp.asarray, params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params))
