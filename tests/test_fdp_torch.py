"""Tests for `scripts/fdp_torch.py`, our PyTorch transcription of official FDP.

Checked against the reference vectors made with the official code
(`tests/data/fdp_ref_small.npz`, reduced widths = `fdp_official.SMALL_CONFIG`)
and against our Flax port `mer_jax.models.fdp_official` on random weights.
Skipped when torch is not installed (it is only needed for the benchmark).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed "
                            "(only needed for the PyTorch side-by-side benchmark)")

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp

from mer_jax.models.fdp_official import reference as fdp_reference
from mer_jax.models import fdp_official

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scripts"))
import fdp_torch  # noqa: E402

SMALL = fdp_official.SMALL_CONFIG


def assert_close(name, actual, ref, rtol=1e-4, atol=1e-6):
  """max|a - ref| <= rtol * max|ref| + atol (the reference tolerance)."""
  a = np.asarray(actual, np.float64)
  b = np.asarray(ref, np.float64)
  assert a.shape == b.shape, (name, a.shape, b.shape)
  diff = float(np.max(np.abs(a - b)))
  scale = float(np.max(np.abs(b)))
  assert diff <= rtol * scale + atol, f"{name}: max|diff| {diff:.3g}, max|ref| {scale:.3g}"


def _small_model(**overrides):
  return fdp_torch.FDP(**dict(SMALL, **overrides))


def _forward_with_features(model, x):
  """Eval forward; also collects frame_rep's T per-frame outputs."""
  feats = []
  hook = model.frame_rep.register_forward_hook(
      lambda m, i, o: feats.append(o.detach()))
  try:
    with torch.no_grad():
      logits, di = model(x)
  finally:
    hook.remove()
  return logits, di, torch.stack(feats, 1)


def test_names_shapes_and_official_init(fdp_ref, fdp_state_dict):
  """Same state_dict names (and order) as the official model; with seed 0
  the construction reproduces the official initial weights bit for bit."""
  torch.manual_seed(0)
  model = _small_model()
  sd = model.state_dict()
  assert list(sd) == list(fdp_state_dict)
  for k, v in sd.items():
    np.testing.assert_array_equal(v.numpy(), fdp_state_dict[k], err_msg=k)
  assert sum(p.numel() for p in model.parameters()) == int(
      fdp_ref["meta/n_params"]) == 917_598


def test_full_model_structure():
  with torch.device("meta"):
    model = fdp_torch.FDP()
  sd = model.state_dict()
  n_params = sum(p.numel() for p in model.parameters())
  assert n_params == fdp_official.FULL_NUM_PARAMS == 85_304_206
  assert len(sd) == 438  # 276 parameters + 54 BNs x 3 buffers
  assert fdp_official.infer_config(sd) == dict(
      fdp_official.FULL_CONFIG, num_classes=5, num_frames=8)
  assert sd["mer.conv3d.weight"].shape == (8, 1, 3, 3, 8)
  assert sd["mer.fc1.weight"].shape == (256, 3528)


@pytest.mark.parametrize("prefix", ["", "calib/"])
def test_eval_forward_matches_reference(fdp_ref, fdp_state_dict, prefix):
  """Eval-mode forward (as the reference `out/` and `calib/out/`)."""
  sd = dict(fdp_state_dict)
  sd.update({k[len("calib/state/"):]: v for k, v in fdp_ref.items()
             if prefix and k.startswith("calib/state/")})
  model = _small_model()
  fdp_torch.load_numpy_state_dict(model, sd, strict=True)
  model.eval()
  logits, di, feats = _forward_with_features(model,
                                             torch.from_numpy(fdp_ref["in/x"]))
  out = prefix + "out/"
  assert_close("logits", logits, fdp_ref[out + "logits"])
  assert_close("dyimg", di, fdp_ref[out + "dyimg"])
  assert_close("frame_features", feats, fdp_ref[out + "frame_features"])
  label = torch.from_numpy(fdp_ref["in/label"]).long()
  me = torch.nn.functional.cross_entropy(logits, label)
  dy = torch.mean((di - torch.from_numpy(fdp_ref["target/dyimg"])) ** 2)
  assert_close("loss/me", me, fdp_ref[prefix + "loss/me"])
  assert_close("loss/dy", dy, fdp_ref[prefix + "loss/dy"])
  if prefix:  # calibrated BN: the two clips really differ
    assert float(torch.max(torch.abs(logits[0] - logits[1]))) > 1e-3


def test_train_step_matches_reference(fdp_ref, fdp_state_dict):
  """One official train step (train mode, DropPath off as in the reference):
  losses, outputs, and every parameter / BN buffer after Adam."""
  model = _small_model(path_dropout=0.0)
  fdp_torch.load_numpy_state_dict(model, fdp_state_dict, strict=True)
  model.train()
  before = {k: v.clone() for k, v in model.state_dict().items()}
  opt = fdp_torch.official_optimizer(model)
  assert isinstance(opt, torch.optim.Adam)
  assert opt.defaults["lr"] == 1e-4 and opt.defaults["weight_decay"] == 1e-3
  out = fdp_torch.train_step(
      model, opt, torch.from_numpy(fdp_ref["in/x"]),
      torch.from_numpy(fdp_ref["target/dyimg_uint8"]),
      torch.from_numpy(fdp_ref["in/label"]).long())
  pre = "train/step1/"
  for k in ("loss_me", "loss_dy", "loss_final"):
    assert_close(k, out[k], fdp_ref[pre + k])
  assert_close("logits", out["logits"], fdp_ref[pre + "logits"])
  assert_close("dyimg", out["dyimg"], fdp_ref[pre + "dyimg"])

  params = dict(model.named_parameters())
  grads = {k: p.grad.numpy() for k, p in params.items()}
  gmax = max(float(np.max(np.abs(g))) for g in grads.values())
  null = fdp_reference.null_gradient_params(fdp_state_dict)
  null_tol = fdp_reference.NULL_GRAD_RTOL * gmax
  n_grads = 0
  for k, g in grads.items():
    if pre + "grad/" + k not in fdp_ref:
      continue
    n_grads += 1
    if k in null:  # mathematically zero: float32 noise on both sides
      assert float(np.max(np.abs(g))) <= null_tol, k
    else:
      assert_close("grad/" + k, g, fdp_ref[pre + "grad/" + k])
  assert n_grads > 100

  after = model.state_dict()
  for k, v in after.items():
    r = fdp_ref[pre + "state/" + k]
    if k.endswith("num_batches_tracked"):
      # 8 per-frame encoder calls per step; the SegNet runs once.
      assert int(v) == int(r) == (8 if k.startswith("frame_rep.") else 1), k
      continue
    if k in params:
      # Adam's first step is ~lr * sign(g + wd * p): where that is within
      # float noise of 0 the sign may flip (only on other CPUs / kernels).
      g = grads[k]
      g_tol = null_tol if k in null else 1e-4 * float(np.max(np.abs(g))) + 1e-6
      ambiguous = np.abs(g + 1e-3 * before[k].numpy()) <= 2 * g_tol
      diff = np.abs(v.numpy().astype(np.float64) - r)
      tol = 1e-4 * float(np.max(np.abs(r))) + 1e-6
      assert np.all(diff[~ambiguous] <= tol), k
      assert np.all(diff[ambiguous] <= 2e-4 * (1 + 1e-3) + tol), k
    else:
      assert_close("state/" + k, v, r)
    # The step changed every parameter and BN statistic.
    assert not torch.equal(v, before[k]), k


def test_drop_path_timm_semantics():
  torch.manual_seed(0)
  dp = fdp_torch.DropPath(0.25)
  x = torch.ones(4000, 2, 3, 3)
  y = dp(x)
  per_sample = y.reshape(4000, -1)
  assert torch.all(per_sample == per_sample[:, :1])  # one draw per sample
  np.testing.assert_allclose(torch.unique(per_sample).numpy(),
                             [0.0, 1.0 / 0.75], rtol=1e-6)
  assert abs(float(y.mean()) - 1.0) < 0.05
  dp.eval()
  assert torch.equal(dp(x), x)
  assert torch.equal(fdp_torch.DropPath(0.0)(x), x)


def _random_flax_variables(config, seed=0):
  """Random weights in the Flax port's variable structure.

  The structure comes from `jax.eval_shape(Model.init)`; the values are drawn
  here with numpy (a jitted Flax init of the small model costs ~10-15 s of
  XLA compile on 2 cores): frame-encoder weights N(0, .02^2), the rest
  U(+-1/sqrt(fan_in)), BatchNorm affine and running stats non-trivial.
  """
  model = fdp_official.Model(**config)
  x = jax.ShapeDtypeStruct((1, 8, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(seed)

  def draw(path, s):
    names = [p.key for p in path]
    leaf = names[-1]
    if leaf == "scale":
      v = 1.0 + 0.2 * rng.standard_normal(s.shape)
    elif leaf == "mean":
      v = 0.1 * rng.standard_normal(s.shape)
    elif leaf == "var":
      v = rng.uniform(0.5, 2.0, s.shape)
    elif leaf == "bias" and names[-2].startswith(("norm", "bn")):
      v = 0.1 * rng.standard_normal(s.shape)
    elif names[1] == "frame_rep" and leaf == "kernel":
      v = 0.02 * rng.standard_normal(s.shape)
    elif names[1] == "frame_rep":
      v = np.zeros(s.shape)
    else:
      fan_in = int(np.prod(s.shape[:-1])) if leaf == "kernel" else None
      bound = 1.0 / np.sqrt(fan_in) if fan_in else 0.1
      v = rng.uniform(-bound, bound, s.shape)
    return np.asarray(v, np.float32)

  return model, jax.tree_util.tree_map_with_path(draw, shapes)


def test_matches_flax_port_random_weights():
  """Flax variables -> `to_state_dict` -> torch (strict); eval and train
  forwards agree, and so do the 8x-updated BN running statistics."""
  config = dict(SMALL, path_dropout=0.0)
  model, variables = _random_flax_variables(config)
  torch_model = fdp_torch.FDP(**config)
  res = fdp_torch.load_numpy_state_dict(
      torch_model, fdp_official.to_state_dict(variables), strict=True)
  assert not res.missing_keys and not res.unexpected_keys

  # Eval mode: calibrate the frame encoder's running stats on the input
  # first (torch, cumulative average over the 8 frame calls), so that its
  # activations are O(1) and the clips differ (with running stats 0 / 1 its
  # std-.02 convs shrink them ~1000x), and hand them to the Flax port. The
  # SegNet keeps its random running stats: calibrating them on this batch of
  # 2 gives near-zero variances that amplify float noise into max-pool
  # argmax flips.
  rng = np.random.default_rng(1)
  frames = rng.uniform(-1, 1, (2, 8, 64, 64, 1)).astype(np.float32)
  x = torch.from_numpy(np.ascontiguousarray(
      frames.transpose(0, 1, 4, 2, 3)[:, None]))  # official (B,1,T,1,H,W)
  calibrated = fdp_torch.FDP(**config)
  calibrated.load_state_dict(torch_model.state_dict())
  for m in calibrated.frame_rep.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      m.reset_running_stats()
      m.momentum = None
  calibrated.train()
  calibrated.dyimg_net.eval()
  with torch.no_grad():
    calibrated(x)
  calibrated.eval()
  calib_vars = fdp_official.load(
      {k: v.numpy() for k, v in calibrated.state_dict().items()}, config)

  @jax.jit
  def flax_forward(eval_vars, train_vars, frames):
    eval_out = model.apply(eval_vars, frames, train=False)
    train_out, state = model.apply(train_vars, frames, train=True,
                                   mutable=["batch_stats"])
    return eval_out, train_out, state["batch_stats"]

  (e_logits, e_aux), (t_logits, t_aux), bstats = flax_forward(
      calib_vars, variables, frames)

  with torch.no_grad():
    logits, di = calibrated(x)
  assert_close("eval logits", logits, e_logits)
  assert_close("eval dyimg", di, e_aux["dynamic_image"])
  assert float(torch.max(torch.abs(logits[0] - logits[1]))) > 1e-3

  torch_model.train()
  with torch.no_grad():
    logits, di = torch_model(x)
  assert_close("train logits", logits, t_logits)
  assert_close("train dyimg", di, t_aux["dynamic_image"])
  new_sd = fdp_official.to_state_dict(
      {"params": variables["params"], "batch_stats": bstats})
  sd = torch_model.state_dict()
  for k, v in new_sd.items():
    assert_close(k, sd[k], v)
