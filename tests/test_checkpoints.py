"""mer_jax.checkpoints: the one model format, its reader, older layouts, resume."""

import json
import os

import numpy as np
import orbax.checkpoint as ocp
import pytest

from mer_jax import checkpoints

PARAMS = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)},
          "head": {"bias": np.ones(5, np.float32)}}
STATS = {"bn": {"mean": np.full(3, 0.5, np.float32)}}


def _assert_tree_equal(a, b):
  import jax  # pylint: disable=g-import-not-at-top
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(x, y)


def test_save_model_roundtrip(tmp_path):
  d = str(tmp_path / "model")
  checkpoints.save_model(d, {"params": PARAMS, "batch_stats": STATS},
                         {"model_name": "fdp_official", "num_classes": 5,
                          "model": {"widths": (16, 24), "mlp_ratio": 3.0}})
  assert sorted(os.listdir(d)) == ["0", checkpoints.META_FILE]
  loaded = checkpoints.load_model_variables(d)
  _assert_tree_equal(loaded.variables, {"params": PARAMS, "batch_stats": STATS})
  assert (loaded.step, loaded.item, loaded.selected_step) == (0, "state", 0)
  assert checkpoints.model_kwargs(loaded.meta) == {
      "widths": (16, 24), "mlp_ratio": 3.0, "num_classes": 5}
  _assert_tree_equal(checkpoints.load_params(d), PARAMS)
  # Saving again replaces the model; a run's directory is refused.
  checkpoints.save_model(d, {"params": {"head": {"bias": np.zeros(5, np.float32)}}},
                         {"model_name": "x", "model": {}})
  assert not checkpoints.load_params(d)["head"]["bias"].any()
  with pytest.raises(checkpoints.CheckpointError, match="holds checkpoint steps"):
    checkpoints.save_model(d, {"params": PARAMS}, {"model_name": "x", "model": {}},
                           step=3)
  with pytest.raises(ValueError, match="no model_name"):
    checkpoints.write_meta(d, {"class_names": ["a"]})


def test_reads_a_fold_written_by_an_older_trainer(tmp_path):
  """Fold manager dir whose meta has only the training config."""
  d = tmp_path / "checkpoints"
  with ocp.StandardCheckpointer() as ck:
    for step in (3, 6):
      ck.save(str(d / str(step) / "state"), {
          "step": np.int32(step), "params": PARAMS, "batch_stats": {},
          "opt_state": {"mu": np.zeros(4, np.float32)}})
      ck.save(str(d / str(step) / "best"), {
          "params": PARAMS, "batch_stats": {}, "score": np.float32(0.5),
          "step": np.int32(3)})
  meta = {"config": {"model_name": "baseline3d", "model": {"widths": [8, 16]}},
          "class_names": list("abc"), "selection": "inner_val"}
  (d / checkpoints.META_FILE).write_text(json.dumps(meta))
  loaded = checkpoints.load_model_variables(str(d))
  assert (loaded.step, loaded.item, loaded.selected_step) == (6, "best", 3)
  _assert_tree_equal(loaded.variables, {"params": PARAMS})
  assert loaded.meta["model_name"] == "baseline3d"
  assert checkpoints.model_kwargs(loaded.meta) == {"widths": (8, 16), "num_classes": 3}
  assert checkpoints.load_model_variables(str(d), step=3).step == 3
  with pytest.raises(checkpoints.CheckpointError, match="No step 4 .* steps: \\[6, 3\\]"):
    checkpoints.load_model_variables(str(d), step=4)


def test_reads_older_pretrained_and_converted_layouts(tmp_path):
  # <workdir>/pretrained of older MA2MI runs: one pytree {"params"}, no meta.
  pretrained = str(tmp_path / "pretrained")
  with ocp.StandardCheckpointer() as ck:
    ck.save(pretrained, {"params": PARAMS})
  loaded = checkpoints.load_model_variables(pretrained)
  assert loaded.meta == {} and loaded.step is None
  _assert_tree_equal(checkpoints.load_params(pretrained), PARAMS)
  # Older convert_fdp_torch.py output: variables/ + model_config.json.
  conv = tmp_path / "converted"
  with ocp.StandardCheckpointer() as ck:
    ck.save(str(conv / "variables"), {"params": PARAMS, "batch_stats": STATS})
  (conv / "model_config.json").write_text(json.dumps(
      {"model_name": "fdp_official", "model": {"num_classes": 5, "widths": [16, 24]}}))
  loaded = checkpoints.load_model_variables(str(conv))
  _assert_tree_equal(loaded.variables, {"params": PARAMS, "batch_stats": STATS})
  assert loaded.meta["model_name"] == "fdp_official"
  assert checkpoints.model_kwargs(loaded.meta) == {"num_classes": 5, "widths": (16, 24)}
  with pytest.raises(checkpoints.CheckpointError, match="holds no checkpoint"):
    checkpoints.load_model_variables(str(tmp_path))


def test_restore_or_init_resumes_pytree_and_json_items(tmp_path):
  d = str(tmp_path / "run")
  fresh = {"state": {"w": np.zeros(3, np.float32)}}
  mngr = checkpoints.manager(d, max_to_keep=2)
  step, items = checkpoints.restore_or_init(mngr, fresh, {"log": {"history": []}})
  assert step == 0 and items == {**fresh, "log": {"history": []}}
  checkpoints.save_step(mngr, 4, {"state": {"w": np.full(3, 4.0, np.float32)}},
                        {"log": {"history": [1.5]}})
  mngr.wait_until_finished()
  step, items = checkpoints.restore_or_init(mngr, fresh, {"log": {"history": []}})
  assert step == 4 and items["log"] == {"history": [1.5]}
  np.testing.assert_array_equal(items["state"]["w"], np.full(3, 4.0, np.float32))
  mngr.close()
