"""Every config loads, has only known keys, and its model builds (shapes only).

A ConfigDict accepts typos silently, so this is where they are caught.
"""

import glob
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import pytest

from mer_jax import config_lib
from mer_jax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if os.path.basename(p) != "common.py")


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_is_valid_and_model_builds(path):
  config = _load(path).get_config()
  config_lib.validate(config)
  assert config.input.datasets, "a config names its dataset(s)"
  if config.task != "mer":
    return  # pretraining tasks build their own models
  model = models.get_model(config.model_name, 5, **config.model.to_dict())
  i = config.input
  shape = (1, i.num_frames, i.size, i.size, i.channels)
  variables = jax.eval_shape(
      lambda: model.init({"params": jax.random.PRNGKey(0),
                          "dropout": jax.random.PRNGKey(1)},
                         jnp.zeros(shape), train=False))
  logits, _ = jax.eval_shape(
      lambda v: model.apply(v, jnp.zeros(shape), train=False), variables)
  assert logits.shape == (1, 5)


def _documented_args(path):
  """Args the docs name: `configs/x.py:ARG` (README, docstring), `:ARG` (docstring)."""
  name = os.path.basename(path)
  doc = _load(path).__doc__ or ""
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  args = set(re.findall(rf"configs/{re.escape(name)}:([\w,]+)", doc + readme))
  return sorted(args | set(re.findall(r"`:([\w,]+)`", doc)) | {"tiny"})


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_documented_args_give_valid_configs_and_unknown_args_raise(path):
  module = _load(path)
  default = module.get_config().to_json_best_effort(sort_keys=True)
  for arg in _documented_args(path):
    config = module.get_config(arg)
    config_lib.validate(config)
    assert config.to_json_best_effort(sort_keys=True) != default, arg
  with pytest.raises(ValueError, match="Unknown config arg"):
    module.get_config("tiny,no_such_variant")


def test_there_is_a_config_per_documented_job():
  names = {os.path.basename(p)[:-3] for p in CONFIGS}
  assert {"fdp_synthetic", "baseline_synthetic", "fdp_samm", "fdp_casme2",
          "fdp_composite", "miacnet_synthetic", "ma2mi_synthetic"} <= names
