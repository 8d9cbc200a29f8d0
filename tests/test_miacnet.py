"""MIACNet and MA2MI pretraining: shapes, onset-only position branch, pretraining
loss, transfer through an orbax checkpoint, gradient flow, pretraining resumed
after a kill (tiny variants)."""

import contextlib
import os
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import ma2mi_synthetic  # noqa: E402
from configs import miacnet_synthetic  # noqa: E402
from mer_jax import checkpoints  # noqa: E402
from mer_jax import models  # noqa: E402
from mer_jax.data import macro_pairs  # noqa: E402
from mer_jax.training import state as train_state  # noqa: E402
from mer_jax.training import steps as train_steps  # noqa: E402
from mer_jax.models import ma2mi  # noqa: E402
from mer_jax.models import miacnet  # noqa: E402
from mer_jax.tasks import ma2mi_pretrain  # noqa: E402


def _tiny_model(**overrides):
  cfg = miacnet_synthetic.get_config("tiny")
  kw = {**cfg.model.to_dict(), **overrides}
  return miacnet.Model(num_classes=5, **kw), cfg


def _frames(seed=0, b=2, t=4, s=32):
  return jax.random.normal(jax.random.PRNGKey(seed), (b, t, s, s, 3)) * 0.3


@pytest.fixture(scope="module")
def tiny_miacnet():
  model, cfg = _tiny_model()
  # Jitted throughout: eager (op-by-op) flax on CPU is many times slower.
  init = jax.jit(lambda x: model.init({"params": jax.random.PRNGKey(0),
                                       "dropout": jax.random.PRNGKey(1)}, x,
                                      train=False))
  return model, cfg, init(_frames())


def test_branch_shapes(tiny_miacnet):
  model, cfg, variables = tiny_miacnet
  logits, aux = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, _frames())
  g = miacnet.action_grid(cfg.input.size, cfg.model.strides)
  d = cfg.model.widths[-1]
  assert logits.shape == (2, 5)
  assert aux["action"].shape == (2, g, g, d)
  assert aux["position"].shape == (2, g, g, d)
  assert {"position_branch", "action_branch", "head"} <= set(variables["params"])
  # The paper's grid: 112 px -> 14 x 14 (MMNet-style widths), shapes only.
  big = miacnet.Model(num_classes=5, stem_width=8, widths=(8, 16, 32),
                      strides=(1, 2, 2), position_depth=1)
  out = jax.eval_shape(
      lambda: big.init_with_output({"params": jax.random.PRNGKey(0)},
                                   jnp.zeros((1, 3, 112, 112, 3)), train=False))
  assert out[0][1]["action"].shape == (1, 14, 14, 32)
  assert out[0][1]["position"].shape == (1, 14, 14, 32)


@pytest.mark.parametrize("options", [
    {"fusion": "gated"}, {"position_input": "resize"}, {"apex": "motion"},
    {"use_position": False}])
def test_model_options_shapes(options):
  model, _ = _tiny_model(**options)
  (logits, aux), variables = jax.eval_shape(  # traced only: no compile
      lambda x: model.init_with_output({"params": jax.random.PRNGKey(0)}, x,
                                       train=False), _frames())
  assert logits.shape == (2, 5)
  assert aux["position"].shape == aux["action"].shape
  assert ("fusion_gate" in variables["params"]) == (options.get("fusion") == "gated")


@pytest.mark.parametrize("train_mode", [False, True])
def test_position_branch_sees_only_onset(tiny_miacnet, train_mode):
  model, _, variables = tiny_miacnet
  x = _frames(1)
  y = x.at[:, 1:].set(_frames(2)[:, 1:] * 3.0)  # every frame but the onset
  rngs = {"dropout": jax.random.PRNGKey(3)}
  mutable = ["batch_stats"] if train_mode else False

  @jax.jit
  def features(frames):
    out = model.apply(variables, frames, train=train_mode, rngs=rngs, mutable=mutable)
    return (out[0] if train_mode else out)[1]

  fx, fy = features(x), features(y)
  np.testing.assert_array_equal(np.asarray(fx["position"]), np.asarray(fy["position"]))
  assert not np.allclose(np.asarray(fx["action"]), np.asarray(fy["action"]))


def test_registry_builds_each_kind_for_its_task():
  """ma2mi is a pretraining model: the MER task refuses it, its task builds it."""
  with pytest.raises(ValueError, match="trained by task 'ma2mi_pretrain'"):
    models.get_model("ma2mi", 5)
  model = models.get_model("ma2mi", task="ma2mi_pretrain", stem_width=8)
  assert isinstance(model, ma2mi.Model) and model.stem_width == 8
  with pytest.raises(ValueError, match="trained by task 'mer'"):
    models.get_model("miacnet", task="ma2mi_pretrain")
  assert isinstance(models.get_model("miacnet", 5), miacnet.Model)
  # Helper modules (common, rank_pooling, ...) are not models.
  assert {"fdp", "fdp_official", "ma2mi", "miacnet"} <= set(models.available())
  assert not {"common", "rank_pooling", "fdp_encoder"} & set(models.available())
  with pytest.raises(ValueError, match="available models"):
    models.get_model("common", 5)


def test_onset_apex_selection():
  f = jnp.zeros((2, 6, 4, 4, 1))
  f = f.at[0, 2].set(1.0).at[1, 4].set(1.0)  # the expression peaks here
  f = f + jnp.linspace(0, 0.5, 6)[None, :, None, None, None]  # linear drift
  select = jax.jit(miacnet.select_onset_apex,
                   static_argnames=("apex", "apex_topk", "onset_jitter"))
  on, ap = select(f, apex="detrended", apex_topk=1, onset_jitter=0, rng=None)
  assert on.tolist() == [0, 0] and ap.tolist() == [2, 4]
  on, ap = select(f, apex="detrended", apex_topk=2, onset_jitter=1,
                  rng=jax.random.PRNGKey(0))
  assert all(0 <= o < a for o, a in zip(on.tolist(), ap.tolist()))
  _, ap = select(f, apex="middle", apex_topk=1, onset_jitter=0, rng=None)
  assert ap.tolist() == [3, 3]


def test_annotated_apex_mode_and_fallback(tiny_miacnet):
  """MMNet's protocol: the annotated apex; -1 (none annotated) is estimated."""
  f = jnp.zeros((3, 6, 4, 4, 1)).at[:, 4].set(1.0)  # motion peaks at frame 4
  select = jax.jit(miacnet.select_onset_apex,
                   static_argnames=("apex", "apex_topk", "onset_jitter",
                                    "apex_fallback"))
  ann = jnp.array([2, -1, 0], jnp.int32)
  on, ap = select(f, apex="annotated", apex_topk=1, onset_jitter=0, rng=None,
                  apex_index=ann)
  assert ap.tolist() == [2, 4, 1] and on.tolist() == [0, 0, 0]
  on, ap = select(f, apex="annotated", apex_topk=2, onset_jitter=3,
                  rng=jax.random.PRNGKey(0), apex_index=ann)
  assert ap.tolist()[0::2] == [2, 1]  # annotated apexes are not jittered
  assert all(0 <= o < a for o, a in zip(on.tolist(), ap.tolist()))
  with pytest.raises(ValueError, match="apex_fallback"):
    miacnet.select_onset_apex(f, apex="annotated", apex_topk=1, onset_jitter=0,
                              rng=None, apex_index=ann, apex_fallback="annotated")
  # The model: the trainer passes `batch_inputs`; eval uses the annotated apex.
  model, _, variables = tiny_miacnet
  assert model.apex == "annotated" and model.batch_inputs == ("apex_index",)
  assert _tiny_model(apex="detrended")[0].batch_inputs == ()
  x = _frames(3)
  apply = jax.jit(lambda x, a: model.apply(variables, x, train=False,
                                           apex_index=a))
  _, aux = apply(x, jnp.array([3, -1], jnp.int32))
  assert aux["apex_idx"].tolist()[0] == 3
  assert aux["apex_fallback"].tolist() == [False, True]
  # No apex_index at all (e.g. a raw video): every apex is estimated.
  on, ap = miacnet.select_onset_apex(f, apex="annotated", apex_topk=1,
                                     onset_jitter=0, rng=None)
  assert ap.tolist() == [4, 4, 4]
  eval_step = jax.jit(train_steps.make_eval_step(model))
  probs = [eval_step(variables["params"], variables["batch_stats"],
                     {"frames": x, "apex_index": jnp.array([a, a], jnp.int32)})
           for a in (1, 3)]
  assert not np.allclose(np.asarray(probs[0]), np.asarray(probs[1]))


def test_gradient_flow_to_both_branches(tiny_miacnet):
  model, _, variables = tiny_miacnet
  x, labels = _frames(4), jnp.array([0, 3])

  def loss_fn(params):
    (logits, aux), _ = model.apply(
        {**variables, "params": params}, x, train=True,
        rngs={"dropout": jax.random.PRNGKey(0)}, mutable=["batch_stats"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return ce + sum(miacnet.aux_losses(aux, {}, orth_weight=0.1).values())

  grads = jax.jit(jax.grad(loss_fn))(variables["params"])
  for branch in ("position_branch", "action_branch", "head"):
    norm = float(optax.tree.norm(grads[branch]))
    assert np.isfinite(norm) and norm > 0, branch
  flat = flax.traverse_util.flatten_dict(grads["position_branch"], sep="/")
  dead = [k for k, v in flat.items() if not np.any(np.asarray(v))]
  assert not dead, dead


# The tiny pretraining of these tests; the last log step (7) is not a multiple
# of log_every, and the resume test checkpoints between log steps. A batch of 8:
# split over the session's 8 devices (test_pretrain_uses_every_device).
PRETRAIN_OVERRIDES = {"num_steps": 7, "log_every": 2, "input.batch_size": 8,
                      "pretrain.latent_weight": 0.5}  # the EMA latent path too


def _pretrain_config(data_dir, **overrides):
  """The tiny pretraining, reading synthetic_macro/tiny from `data_dir`."""
  config = ma2mi_synthetic.get_config("tiny")
  config.update_from_flattened_dict({**PRETRAIN_OVERRIDES,
                                     "input.data_dir": data_dir, **overrides})
  return config


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory, data_dir):
  config = _pretrain_config(data_dir)
  workdir = str(tmp_path_factory.mktemp("ma2mi"))
  with _devices_per_batch() as seen:
    result = ma2mi_pretrain.run(config, workdir)
  PRETRAIN_DEVICES.extend(seen)
  return config, workdir, result


# Devices each batch of the module's pretraining was split over.
PRETRAIN_DEVICES = []


@contextlib.contextmanager
def _devices_per_batch():
  """Records, per batch put on the mesh, the devices of its arrays."""
  from mer_jax.training import sharding  # pylint: disable=g-import-not-at-top
  put, seen = sharding.Sharder.put_batch, []

  def spy(self, batch, **kwargs):
    out = put(self, batch, **kwargs)
    seen.append({k: len(v.sharding.device_set) for k, v in out.items()})
    return out

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(sharding.Sharder, "put_batch", spy)
    yield seen


def test_pretrain_uses_every_device(pretrain_run):
  """Sharded as MER training is: each batch split over all 8 devices."""
  del pretrain_run
  assert jax.device_count() == 8
  assert len(PRETRAIN_DEVICES) == PRETRAIN_OVERRIDES["num_steps"]
  assert all(set(d.values()) == {8} for d in PRETRAIN_DEVICES), PRETRAIN_DEVICES


def test_pretrain_outputs(pretrain_run):
  _, workdir, result = pretrain_run
  assert [h["step"] for h in result["history"]] == [2, 4, 6, 7]
  assert result["resumed_from"] == 0 and not result["already_done"]
  assert all(np.isfinite(h["loss_latent"]) for h in result["history"])
  for name in ("loss_curve.png", "loss_history.json", "pretrained",
               "pretrain_done.json", "pretrain_checkpoints/7/state"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, "tensorboard", "pretrain"))



def test_pretrain_loss_decreases(pretrain_run):
  """Same shapes as the run above (its compiled step is reused from the cache)."""
  config, _, _ = pretrain_run
  settings = ma2mi_pretrain.pretrain_settings(config)
  settings["latent_weight"] = 0.0
  clips = macro_pairs.load_clips(config, settings)
  batch = next(macro_pairs.batches(clips, config, settings, seed=0))
  model = ma2mi.Model(**config.model.to_dict())
  config.schedule.name = "constant"
  tx = train_state.make_optimizer(config)
  state = ma2mi_pretrain.create_state(model, tx, config, jax.random.PRNGKey(0))
  step = jax.jit(ma2mi_pretrain.make_train_step(model, tx, settings))
  losses = []
  for _ in range(25):  # one fixed batch: the loss must go down
    state, metrics, _ = step(state, batch, jax.random.PRNGKey(0))
    losses.append(float(metrics["loss_pixel"]))
  assert losses[0] == pytest.approx(1.0, abs=1e-3)  # zero-init decoder: "no change"
  assert np.mean(losses[-5:]) < 0.9 * losses[0], losses


def test_partial_restore_from_pretraining(pretrain_run, tiny_miacnet):
  _, workdir, _ = pretrain_run
  model, cfg, variables = tiny_miacnet
  loaded = checkpoints.load_params(os.path.join(workdir, "pretrained"))
  assert set(loaded) == {"position_branch", "action_branch"}
  merged, used, new = checkpoints.merge_params(variables["params"], loaded)
  n_branch = sum(len(flax.traverse_util.flatten_dict(variables["params"][b]))
                 for b in ("position_branch", "action_branch"))
  assert len(used) == n_branch
  assert all(k.startswith(("position_branch/", "action_branch/")) for k in used)
  assert sorted(new) == ["head/bias", "head/kernel"]
  np.testing.assert_array_equal(
      merged["position_branch"]["pos_embed"], loaded["position_branch"]["pos_embed"])
  # The trainer's path (config.init_from): branches loaded, head fresh.
  cfg.input.num_frames = 4
  state = train_state.create_train_state(model, train_state.make_optimizer(cfg), cfg,
                                   jax.random.PRNGKey(0), init_params=loaded)
  np.testing.assert_array_equal(
      np.asarray(state.params["action_branch"]["stem_conv"]["kernel"]),
      loaded["action_branch"]["stem_conv"]["kernel"])
  np.testing.assert_array_equal(np.asarray(state.params["head"]["kernel"]),
                                np.asarray(variables["params"]["head"]["kernel"]))


# ----------------------------------------------------------------------------
# MA2MI pretraining resumes after a kill.

# Runs the pretraining, SIGKILLs itself once `kill_after` steps are done and
# that step's checkpoint is on disk (deterministic, unlike a kill from outside).
_KILLED_PRETRAINING = r"""
import json, os, signal, sys, time
sys.path.insert(0, os.getcwd())
from configs import ma2mi_synthetic
from mer_jax.data import macro_pairs
from mer_jax.tasks import ma2mi_pretrain as m
workdir, overrides, kill_after = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
config = ma2mi_synthetic.get_config("tiny")
config.update_from_flattened_dict(overrides)
stream = macro_pairs.batches
def batches(*args, **kwargs):
  for i, batch in enumerate(stream(*args, **kwargs)):
    if i == kill_after:
      ckpt = os.path.join(workdir, m.CHECKPOINT_DIR, str(kill_after))
      while not os.path.isdir(ckpt):
        time.sleep(0.01)
      os.kill(os.getpid(), signal.SIGKILL)
    yield batch
macro_pairs.batches = batches
m.run(config, workdir)
"""


def _scalars(workdir, tag):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard", "pretrain"), size_guidance={"scalars": 0})
  acc.Reload()
  return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_pretrain_resumes_after_kill_bit_for_bit(pretrain_run, tmp_path, data_dir):
  """Killed after step 6 (checkpoints 3 and 6), step 6 corrupt: resumes at 3.

  Step 3's checkpoint holds step 3's metrics not yet averaged (log_every=2);
  the killed run had logged steps 4 and 6 to TensorBoard already.
  """
  import glob  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  _, ref_dir, ref = pretrain_run
  workdir = str(tmp_path / "killed")
  overrides = {**PRETRAIN_OVERRIDES, "checkpoint_every": 3,
               "input.data_dir": data_dir}
  env = dict(os.environ,
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  proc = subprocess.run(
      [sys.executable, "-c", _KILLED_PRETRAINING, workdir, json.dumps(overrides),
       "6"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-3000:]
  ckpt_dir = os.path.join(workdir, ma2mi_pretrain.CHECKPOINT_DIR)
  assert checkpoints.step_dirs(ckpt_dir) == [6, 3]
  assert not os.path.exists(os.path.join(workdir, "pretrained"))
  assert [s for s, _ in _scalars(workdir, "pretrain/loss")] == [2, 4, 6]
  for f in glob.glob(os.path.join(ckpt_dir, "6", "state", "**", "d", "*"),
                     recursive=True):
    open(f, "wb").close()  # truncated, as by a full disk

  config = _pretrain_config(data_dir, checkpoint_every=3)
  with pytest.warns(checkpoints.CheckpointFallbackWarning, match="step 6"):
    result = ma2mi_pretrain.run(config, workdir)
  assert result["resumed_from"] == 3 and not result["already_done"]
  assert [n.split("-")[0] for n in os.listdir(tmp_path / "killed" / "corrupt_checkpoints")] == ["6"]
  assert checkpoints.step_dirs(ckpt_dir) == [7, 6]

  # Bit for bit: exported branches, loss history (each log step once), curves.
  a = flax.traverse_util.flatten_dict(
      checkpoints.load_params(os.path.join(ref_dir, "pretrained")), sep="/")
  b = flax.traverse_util.flatten_dict(
      checkpoints.load_params(os.path.join(workdir, "pretrained")), sep="/")
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
  assert result["history"] == ref["history"]
  for d in (ref_dir, workdir):
    with open(os.path.join(d, "loss_history.json")) as f:
      assert json.load(f) == ref["history"]
  for tag in ("pretrain/loss", "pretrain/loss_latent", "pretrain/lr"):
    assert _scalars(workdir, tag) == _scalars(ref_dir, tag), tag
  assert [s for s, _ in _scalars(workdir, "pretrain/loss")] == [2, 4, 6, 7]

  # A finished run is not retrained: nothing is rewritten.
  stamp = {p: os.stat(p).st_mtime_ns for p in glob.glob(
      os.path.join(workdir, "**"), recursive=True)}
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    again = ma2mi_pretrain.run(config, workdir)
  assert again["already_done"] and again["history"] == ref["history"]
  assert {p: os.stat(p).st_mtime_ns for p in glob.glob(
      os.path.join(workdir, "**"), recursive=True)} == stamp
