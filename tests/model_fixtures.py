"""Fold checkpoints for the inference tests, in the trainer's format.

Shapes come from `jax.eval_shape` (no compile); the weights are the caller's
(random or zeros), which is all the inference paths need.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax import checkpoints
from mer_jax import models


def variable_shapes(config, num_classes: int):
  """`{"params", ["batch_stats"]}` ShapeDtypeStructs of the config's model."""
  model = models.get_model(config.model_name, num_classes, **config.model.to_dict())
  i = config.input
  return jax.eval_shape(lambda: model.init(
      {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
      jnp.zeros((1, i.num_frames, i.size, i.size, i.channels)), train=False))


def write_fold_checkpoint(directory, config, class_names, variables, *, step: int,
                          test_subject: str) -> str:
  """A fold's checkpoints/ (weights of `step` + meta) as the trainer writes it."""
  return checkpoints.save_model(str(directory), variables, {
      "config": config.to_dict(), "class_names": list(class_names),
      "selection": "fixed", "test_subject": test_subject}, step=step)


def zero_fdp_checkpoint(directory):
  """configs/fdp_synthetic.py:tiny with zero weights (an FDP-like model:
  aux["dynamic_image"]); returns the config."""
  from configs import fdp_synthetic  # pylint: disable=g-import-not-at-top
  config = fdp_synthetic.get_config("tiny")
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variable_shapes(config, 5))
  write_fold_checkpoint(directory, config, "abcde", zeros, step=1, test_subject="none")
  return config
