"""Tests for the code-faithful port of the official FDP model.

`tests/data/fdp_ref_small.npz` is a subset of the official-PyTorch reference
vectors (reduced widths; made by scripts/make_fdp_test_subset.py).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax.data import dynamic_image as di_lib
from mer_jax.data import targets
from mer_jax.models import fdp_official as fdp
from mer_jax.models.fdp_official import reference as fdp_reference
from mer_jax.models.fdp_official import torch_layers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scripts"))


@pytest.fixture(scope="module")
def summary(fdp_ref):
  return fdp_reference.run_reference_checks(fdp_ref)


@pytest.mark.parametrize("group", [
    "out/logits", "out/frame_features", "calib/out/dynamic_representation",
    "out/mer_pooled", "out/dyimg_logits", "out/dyimg",
    "out/segnet_pool*_indices", "loss/final",
    "calib/out/logits", "calib/out/frame_features", "calib/out/dyimg",
    "calib/loss/final",
    "target/dyimg_uint8", "target/dyimg",
    "train/step1/loss_final", "train/step1/logits", "train/step1/dyimg",
    "train/step1/grad/*", "train/step1/grad_null/*", "train/step1/state/*",
])
def test_reference_group_checked(summary, group):
  assert group in summary["max_rel_err"], sorted(summary["max_rel_err"])


def test_reference_checks_pass(summary):
  assert summary["ok"], summary["failed"]
  assert summary["n_checked"] > 400
  assert summary["config"]["widths"] == [16, 24, 32, 48]
  # The end-to-end forwards are far inside the tolerance.
  for key in ("out/logits", "calib/out/logits", "calib/out/frame_features",
              "train/step1/logits", "loss/final", "calib/loss/final"):
    assert summary["max_rel_err"][key] < 1e-5, key


def test_small_param_count(fdp_ref, fdp_state_dict):
  variables = fdp.load(fdp_state_dict)
  n = sum(x.size for x in jax.tree.leaves(variables["params"]))
  assert n == int(fdp_ref["meta/n_params"]) == 917_598


def test_dynamic_image_target_bit_equal(fdp_ref):
  fn = targets.get("dynamic_image")
  assert fn is di_lib.dynamic_image
  np.testing.assert_array_equal(di_lib.rank_pool_weights(8),
                                fdp_ref["target/rank_pool_weights_fw"])
  for b, clip in enumerate(fdp_ref["in/frames_uint8"]):
    out = fn(clip[..., None])
    assert out.dtype == np.float32 and out.shape == (64, 64)
    np.testing.assert_array_equal(out, fdp_ref["target/dyimg"][b])
    # A grey clip given as RGB goes through PIL's 'L' formula unchanged.
    np.testing.assert_array_equal(fn(np.repeat(clip[..., None], 3, -1)), out)


def test_pil_grey_formula():
  rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]]],
                 np.uint8)
  grey = di_lib.to_grey_uint8(rgb)[0, 0]
  expected = [(r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
              for r, g, b in rgb[0, 0].astype(int)]
  np.testing.assert_array_equal(grey, expected)


def test_full_model_shapes_and_param_count():
  model = fdp.Model()
  x = jax.ShapeDtypeStruct((2, 8, 64, 64, 1), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x)
  n = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables["params"]))
  assert n == fdp.FULL_NUM_PARAMS == 85_304_206
  sd = fdp.to_state_dict(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                      variables))
  # 276 parameters + 54 BatchNorms x (running_mean, running_var).
  assert len(sd) == 276 + 2 * 54
  assert sd["mer.conv3d.weight"].shape == (8, 1, 3, 3, 8)
  assert sd["mer.fc1.weight"].shape == (256, 3528)
  assert sd["frame_rep.proj_head.0.weight"].shape == (4096, 768)
  assert sd["frame_rep.features.19.mlp.conv1.weight"].shape == (2304, 768, 1, 1)
  assert fdp.infer_config(sd) == dict(fdp.FULL_CONFIG, num_classes=5,
                                      num_frames=8)
  (logits, aux), state = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"],
                               rngs={"dropout": jax.random.key(0)}),
      variables, x)
  assert logits.shape == (2, 5)
  assert aux["dynamic_image"].shape == (2, 64, 64)
  assert aux["dynamic_representation"].shape == (2, 64, 64, 8)
  assert aux["frame_features"].shape == (2, 8, 4096)
  assert jax.tree.structure(state["batch_stats"]) == jax.tree.structure(
      variables["batch_stats"])


def test_load_roundtrip_and_errors(fdp_state_dict):
  sd = fdp_state_dict
  variables = fdp.load(sd)
  back = fdp.to_state_dict(variables)
  for k, v in back.items():
    np.testing.assert_array_equal(v, sd[k])
  assert set(back) == {k for k in sd if not k.endswith("num_batches_tracked")}
  missing = dict(sd)
  del missing["dyimg_net.bn22.running_var"]
  with pytest.raises(KeyError, match="dyimg_net.bn22.running_var"):
    fdp.load(missing)
  bad = dict(sd)
  bad["mer.fc2.bias"] = np.zeros(7, np.float32)
  with pytest.raises(ValueError, match="mer.fc2.bias"):
    fdp.load(bad)


def test_checkpoint_roundtrip(fdp_state_dict, tmp_path):
  import convert_fdp_torch  # pylint: disable=g-import-not-at-top
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  sd = fdp_state_dict
  config = fdp.infer_config(sd)
  np.savez(tmp_path / "sd.npz", **sd)
  assert convert_fdp_torch.main([str(tmp_path / "sd.npz"), "--out", str(tmp_path / "ckpt")]) == 0
  loaded = checkpoints.load_model_variables(str(tmp_path / "ckpt"))
  variables, config2 = loaded.variables, checkpoints.model_kwargs(loaded.meta)
  assert config2 == config
  back = fdp.to_state_dict(variables)
  for k, v in back.items():
    np.testing.assert_array_equal(np.asarray(v), sd[k])


def test_torch_batchnorm_semantics():
  """Per-group batch stats; T sequential running updates, unbiased var."""
  rng = np.random.default_rng(0)
  x = rng.normal(2.0, 3.0, (3, 4, 5, 5, 6)).astype(np.float32)  # [T,B,H,W,C]
  bn = torch_layers.TorchBatchNorm(group_dims=1)
  v = bn.init(jax.random.key(0), x, train=True)
  y, st = bn.apply(v, x, train=True, mutable=["batch_stats"])
  m = np.zeros(6)
  var = np.ones(6)
  for t in range(3):
    xt = x[t].reshape(-1, 6).astype(np.float64)
    m = 0.9 * m + 0.1 * xt.mean(0)
    var = 0.9 * var + 0.1 * xt.var(0, ddof=1)
    yt = (xt - xt.mean(0)) / np.sqrt(xt.var(0) + 1e-5)
    np.testing.assert_allclose(np.asarray(y[t]).reshape(-1, 6), yt,
                               rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(st["batch_stats"]["mean"], m, rtol=1e-5)
  np.testing.assert_allclose(st["batch_stats"]["var"], var, rtol=1e-5)


def test_max_pool_unpool_first_index_and_gradient():
  x = jnp.array([[0., 0., 1., 3.], [0., 0., 3., 2.],
                 [5., 1., 0., 0.], [2., 5., 0., 0.]]).reshape(1, 4, 4, 1)
  pooled, idx = torch_layers.max_pool_2x2_argmax(x)
  np.testing.assert_array_equal(pooled[0, ..., 0], [[0., 3.], [5., 0.]])
  # Ties -> the first maximum in row-major order, as torch CPU.
  np.testing.assert_array_equal(torch_layers.pool_indices_to_torch(idx)[0, 0],
                                [[0, 3], [8, 10]])
  up = torch_layers.max_unpool_2x2(pooled, idx)
  np.testing.assert_array_equal(
      up[0, ..., 0], [[0., 0., 0., 3.], [0., 0., 0., 0.],
                      [5., 0., 0., 0.], [0., 0., 0., 0.]])
  g = jax.grad(lambda x: torch_layers.max_pool_2x2_argmax(x)[0].sum())(x)
  assert float(g.sum()) == 4.0 and float(g[0, 0, 0, 0]) == 1.0


def test_aux_losses_mask():
  pred = jnp.stack([jnp.full((4, 4), 0.5), jnp.full((4, 4), 0.9)])
  batch = {"dynamic_image": jnp.zeros((2, 4, 4)),
           "mask": jnp.array([1.0, 0.0])}
  out = fdp.aux_losses({"dynamic_image": pred}, batch, dy_weight=100.0)
  np.testing.assert_allclose(out["dynamic_image_mse"], 25.0, rtol=1e-6)
  del batch["mask"]
  out = fdp.aux_losses({"dynamic_image": pred}, batch, dy_weight=2.0)
  np.testing.assert_allclose(out["dynamic_image_mse"], (0.25 + 0.81), rtol=1e-6)


def test_null_gradient_params(fdp_state_dict):
  null = fdp_reference.null_gradient_params(fdp_state_dict)
  assert "dyimg_net.conv11.bias" in null
  assert "dyimg_net.conv11d.bias" not in null
  assert "frame_rep.features.1.mlp.conv2.bias" in null
  assert "frame_rep.features.7.mlp.conv2.bias" in null
  assert "frame_rep.features.0.mlp.conv2.bias" not in null
  assert len(null) == 25 + 4


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (1, 4)])
def test_im2col_path_is_the_same_math(hw):
  """The fast small-map path (im2col + matmul) equals XLA's conv in float64."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (2, 3) + hw + (16,), jnp.float64)
    fast = torch_layers.Conv2d(24, im2col_max_pixels=4)
    slow = torch_layers.Conv2d(24, im2col_max_pixels=0)
    k1, k2 = jax.random.split(jax.random.key(1))
    params = {"params": {
        "kernel": jax.random.normal(k1, (3, 3, 16, 24), jnp.float64),
        "bias": jax.random.normal(k2, (24,), jnp.float64)}}

    def value_and_grads(m):
      f = lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
      return f(params, x), jax.grad(f, argnums=(0, 1))(params, x)

    (va, ga), (vb, gb) = value_and_grads(fast), value_and_grads(slow)
    assert abs(float(va - vb)) < 1e-10
    for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10,
                                 atol=1e-10)
    # It is really another path: float32 sums in another order.
    jaxpr = str(jax.make_jaxpr(lambda x: fast.apply(params, x))(x))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr


def _bf16_exact(key, shape):
  """float32 values that bfloat16 represents exactly (rounding is a no-op)."""
  x = jax.random.normal(key, shape, jnp.float32)
  return x.astype(jnp.bfloat16).astype(jnp.float32)


@pytest.mark.parametrize("k,stride,pad,shape", [
    (3, 1, 1, (2, 6, 6, 16)), (3, 2, 1, (2, 7, 8, 16)),
    (1, 1, 0, (2, 3, 5, 5, 16))])
def test_mixed_conv_forward_and_both_gradients(k, stride, pad, shape):
  """bfloat16-operand conv: on inputs bfloat16 holds exactly it is float32 math.

  All three products (y, dx, dw) round only their operands; with operands
  already in bfloat16 what is left is float32 accumulation in another order,
  so a wrong transpose, stride or layout shows as an O(1) error.
  """
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = _bf16_exact(kx, shape)
  w = _bf16_exact(kw, (k, k, 16, 24))

  def ref(x, w):
    return jax.lax.conv_general_dilated(
        x.reshape((-1,) + x.shape[-3:]), w, (stride, stride),
        ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST)

  def mixed(x, w):
    return torch_layers.mixed_conv(x.reshape((-1,) + x.shape[-3:]), w, stride,
                                   pad, "bfloat16")

  y_ref, vjp_ref = jax.vjp(ref, x, w)
  y, vjp = jax.jit(lambda x, w: jax.vjp(mixed, x, w))(x, w)
  assert y.dtype == jnp.float32 and y.shape == y_ref.shape
  g = _bf16_exact(kg, y.shape)
  for a, b in zip((y,) + vjp(g), (y_ref,) + vjp_ref(g)):
    assert a.shape == b.shape and a.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                               atol=1e-5 * float(jnp.max(jnp.abs(b))))
  # General float32 inputs are rounded: close, not equal.
  xr = jax.random.normal(kx, shape)
  err = jnp.max(jnp.abs(mixed(xr, w) - ref(xr, w))) / jnp.max(jnp.abs(ref(xr, w)))
  assert 1e-6 < float(err) < 2e-2


def test_bfloat16_model_tracks_float32():
  """matmul_dtype="bfloat16" (every path: im2col, pointwise, XLA conv, dense)
  stays close to the float32 model and trains as well; float32 is the default.

  Gradients are not compared directly: this model's train-mode gradients are
  chaotic (max-pool argmax, ReLU and small-batch BatchNorm near-ties), so even
  1e-3 noise on the float32 model's input leaves a gradient cosine of ~0.2.
  """
  cfg = dict(fdp.SMALL_CONFIG)
  f32 = fdp.Model(**cfg)
  assert f32.matmul_dtype == "float32"
  b16 = fdp.Model(**cfg, matmul_dtype="bfloat16", im2col_max_pixels=256)
  frames = jax.random.normal(jax.random.key(0), (4, 8, 64, 64, 1))
  variables = f32.init(jax.random.key(1), frames, train=False)
  (l32, a32), (l16, a16) = (
      m.apply(variables, frames, train=False) for m in (f32, b16))
  for a, b in ((l16, l32), (a16["dynamic_image_logits"],
                            a32["dynamic_image_logits"])):
    rel = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    assert 0 < rel < 0.05, rel
  jaxpr = str(jax.make_jaxpr(
      lambda v: b16.apply(v, frames, train=False))(variables))
  assert "bf16" in jaxpr and "custom_vjp_call" in jaxpr

  tx = fdp_reference.official_optimizer(lr=1e-3)
  labels = jnp.array([0, 3, 1, 3])
  target = jax.random.uniform(jax.random.key(2), (4, 64, 64))
  losses = {}
  for name, m in (("f32", f32), ("b16", b16)):
    step = jax.jit(fdp_reference.make_train_step(m, tx, return_grads=False))
    state = (variables["params"], variables["batch_stats"],
             tx.init(variables["params"]))
    losses[name] = []
    for i in range(6):
      *state, out = step(*state, frames, labels, target, jax.random.key(i))
      losses[name].append(float(out["losses"]["final"]))
  assert losses["b16"][-1] < 0.95 * losses["b16"][0], losses
  np.testing.assert_allclose(losses["b16"], losses["f32"], rtol=0.05)
  with pytest.raises(ValueError, match="matmul_dtype"):
    fdp.Model(**cfg, matmul_dtype="float16").init(
        jax.random.key(0), frames, train=False)


def test_mixed_conv_degenerate_shapes_compile_and_run():
  """Odd sizes (1 pixel, 1 channel, 5 classes, stride 2 on odd maps) must
  reach XLA:CPU's bfloat16 dot kernels too: a bfloat16 x bfloat16 -> float32
  dot that the CPU backend does not take fails at run time, not at trace."""
  for n, h, cin, cout, k, stride, pad in [
      (1, 1, 1, 1, 1, 1, 0), (2, 1, 256, 5, 1, 1, 0), (1, 2, 3, 7, 3, 1, 1),
      (3, 5, 2, 3, 3, 2, 1), (1, 64, 8, 1, 3, 1, 1)]:
    x = jnp.ones((n, h, h, cin))
    w = jnp.full((k, k, cin, cout), 0.5)
    f = jax.jit(jax.value_and_grad(
        lambda x, w: jnp.sum(
            torch_layers.mixed_conv(x, w, stride, pad, "bfloat16")),
        argnums=(0, 1)))
    v, (gx, gw) = f(x, w)
    assert gx.shape == x.shape and gw.shape == w.shape
    assert float(v) > 0 and float(jnp.min(gw)) > 0
