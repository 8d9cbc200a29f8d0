"""Tests for the paper-architecture FDP model (`mer_jax.models.fdp`)."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mer_jax.models import fdp
from mer_jax.models import rank_pooling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for a forward + backward in a few seconds on a 2-core CPU.
TINY = dict(patch=4, widths=(8, 12), depths=(1, 1), global_blocks=(1, 1),
            sr_ratios=(2, 1), head_dim=4, mlp_ratio=2.0, drop_path=0.1,
            rank_dim=8, rank_hidden=8, head_width=8, decoder_widths=(8, 4))


def _init(model, shape, seed=0):
  x = jnp.zeros(shape, jnp.float32)
  rng = jax.random.PRNGKey(seed)
  # jit: an eager init compiles every op on its own (slow on CPU).
  return jax.jit(lambda r, x: model.init({"params": r, "dropout": r}, x,
                                         train=False))(rng, x)


def _batch(b=4, t=5, size=16, c=1, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "frames": jnp.asarray(rng.normal(size=(b, t, size, size, c)), jnp.float32),
      "label": jnp.asarray(rng.integers(0, 3, size=b), jnp.int32),
      "mask": jnp.ones((b,), jnp.float32),
      "dynamic_image": jnp.asarray(rng.uniform(size=(b, size, size)), jnp.float32),
      "apex_index": jnp.asarray(rng.integers(-1, t, size=b), jnp.int32),
  }


@pytest.fixture(scope="module")
def tiny():
  """The TINY model and its variables for `_batch()` shapes (one compile)."""
  model = fdp.Model(num_classes=3, **TINY)
  return model, _init(model, _batch()["frames"].shape)


@pytest.mark.parametrize("t,size,c", [(5, 16, 1), (8, 24, 3), (3, 32, 1)])
def test_output_shapes(t, size, c):
  model = fdp.Model(num_classes=3, **TINY)
  x = jax.ShapeDtypeStruct((2, t, size, size, c), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0)}, x, train=False), x)
  (logits, aux), _ = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"],
                               rngs={"dropout": jax.random.PRNGKey(1)}),
      variables, x)
  assert logits.shape == (2, 3)
  assert aux["rank_scores"].shape == (2, t)
  assert aux["rank_weights"].shape == (2, t)
  assert aux["dynamic_image"].shape == (2, size, size)
  assert aux["dynamic_representation"].shape[0] == 2


def test_forward_values(tiny):
  model, variables = tiny
  batch = _batch()
  logits, aux = jax.jit(lambda x: model.apply(variables, x, train=False))(
      batch["frames"])
  assert np.all(np.isfinite(np.asarray(logits)))
  np.testing.assert_allclose(
      aux["rank_weights"], rank_pooling.temporal_pool_weights(aux["rank_scores"]),
      rtol=1e-5, atol=1e-6)
  di = np.asarray(aux["dynamic_image"])
  assert di.min() >= 0.0 and di.max() <= 1.0
  # Motion input: without the appearance stream a static image added to
  # every frame changes nothing.
  static = jnp.asarray(np.random.default_rng(5).normal(size=(1, 1, 16, 16, 1)),
                       jnp.float32)
  logits2, _ = jax.jit(lambda x: model.apply(variables, x, train=False))(
      batch["frames"] + static)
  np.testing.assert_allclose(logits, logits2, atol=1e-4)


def test_pooling_depends_on_frame_order(tiny):
  """Reversed or shuffled frames give another dynamic representation.

  The `softmax` ablation pools the same way for any order of frames 1..T-1.
  """
  model, variables = tiny
  x = _batch()["frames"]
  perm = jnp.array([0, 3, 1, 4, 2])  # frame 0 stays the onset reference
  views = {"clip": x, "reversed": x[:, ::-1], "shuffled": x[:, perm]}
  for pooling in ("rank_pool", "softmax"):
    m = fdp.Model(num_classes=3, pooling=pooling, **TINY)
    f = jax.jit(lambda x, m=m: m.apply(variables, x, train=False))
    out = {k: f(v) for k, v in views.items()}
    d = {k: np.asarray(a["dynamic_representation"]) for k, (_, a) in out.items()}
    scale = np.abs(d["clip"]).max()
    assert np.abs(d["reversed"] - d["clip"]).max() > 1e-2 * scale
    change = np.abs(d["shuffled"] - d["clip"]).max()
    logits_change = np.abs(np.asarray(out["shuffled"][0] - out["clip"][0])).max()
    if pooling == "rank_pool":
      assert change > 1e-2 * scale, change
      assert logits_change > 1e-4, logits_change
      di_change = np.abs(np.asarray(out["reversed"][1]["dynamic_image"]
                                    - out["clip"][1]["dynamic_image"])).max()
      assert di_change > 1e-3, di_change
    else:
      assert change < 1e-5 * scale, change


def test_clip_and_reverse_give_different_dynamic_image_targets():
  from mer_jax.data import dynamic_image
  rng = np.random.default_rng(0)
  clip = rng.integers(0, 256, (8, 16, 16, 1)).astype(np.uint8)
  fwd = dynamic_image.dynamic_image(clip)
  rev = dynamic_image.dynamic_image(clip[::-1])
  assert np.abs(fwd - rev).mean() > 0.05
  # The pooling coefficients are the target's: alpha over T, scaled.
  w = rank_pooling.temporal_pool_weights(jnp.zeros((1, 8)))[0]
  alpha = dynamic_image.rank_pool_weights(8)
  np.testing.assert_allclose(w, 2 * alpha / np.abs(alpha).sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="pooling"):
    rank_pooling.temporal_pool_weights(jnp.zeros((1, 8)), "mean")


def test_full_size_default_model_eval_shape():
  model = fdp.Model(num_classes=5)
  x = jax.ShapeDtypeStruct((2, 8, 112, 112, 3), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0)}, x, train=False), x)
  (logits, aux) = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False), variables, x)
  assert logits.shape == (2, 5)
  assert aux["rank_scores"].shape == (2, 8)
  assert aux["dynamic_image"].shape == (2, 112, 112)
  n = sum(p.size for p in jax.tree.leaves(variables["params"]))
  assert 1e6 < n < 2e7, n
  assert "batch_stats" in variables


def test_bad_config_raises():
  model = fdp.Model(num_classes=3, **{**TINY, "depths": (1,)})
  with pytest.raises(ValueError, match="depths"):
    _init(model, (1, 4, 16, 16, 1))
  model = fdp.Model(num_classes=3, **{**TINY, "patch": 5})
  with pytest.raises(ValueError, match="patch"):
    _init(model, (1, 4, 16, 16, 1))


def _per_clip(scores, apex=None, margin=0.5, window="to_peak"):
  scores = jnp.asarray(scores, jnp.float32)
  if apex is not None:
    apex = jnp.asarray(apex, jnp.int32)
  return np.asarray(rank_pooling.ranking_loss_per_clip(
      scores, apex, margin=margin, window=window))


def test_ranking_loss_prefers_chronological_scores():
  t = 6
  up = jnp.arange(t, dtype=jnp.float32)[None]  # rises every frame
  down = up[:, ::-1]
  for window in ("clip", "to_peak"):
    assert _per_clip(up, window=window)[0] == 0.0, window
    assert _per_clip(down, window=window)[0] > 1.0, window
  # to_peak: rise to the apex then fall costs nothing; clip penalises the fall.
  rise_fall = jnp.array([[0.0, 1.0, 2.0, 3.0, 2.0, 1.0]])
  assert _per_clip(rise_fall)[0] == 0.0
  assert _per_clip(rise_fall, window="clip")[0] > 0.0
  # A flat clip is penalised by the margin.
  np.testing.assert_allclose(_per_clip(jnp.zeros((1, t)), window="clip"), [0.5])
  # No apex_index, or -1 everywhere, is the same (the fallback).
  np.testing.assert_array_equal(_per_clip(rise_fall, [-1]), _per_clip(rise_fall))
  with pytest.raises(ValueError, match="rank_window"):
    _per_clip(up, window="bogus")


def test_ranking_loss_uses_the_apex():
  m = 0.5
  # Perfectly ordered about the apex (rise by >= m, then fall by >= m): zero.
  np.testing.assert_array_equal(
      _per_clip([[0.0, 1.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0],
                 [0.0, 1.0, 0.0, -1.0, -2.0]], [2, 4, 1], m), [0.0, 0.0, 0.0])
  # Scores rising past the annotated apex 2: pairs (0,1), (1,2) rise (hinge
  # 0); (2,3), (3,4) should fall but rise by 1: hinge 0.5 + 1 = 1.5 each,
  # mean over the 4 ranked pairs = 3 / 4. The fallback (peak estimate at
  # frame 4, every pair rising) says 0.
  up = [[0.0, 1.0, 2.0, 3.0, 4.0]]
  np.testing.assert_allclose(_per_clip(up, [2], m), [0.75])
  np.testing.assert_allclose(_per_clip(up, [-1], m), [0.0])
  # Annotated apex 3 but the scores peak at 2: diffs 1, 2, -1, -1; pair (2,3)
  # should rise: hinge 0.5 + 1 = 1.5; pair (3,4) falls by 1: 0. Mean 1.5 / 4.
  # The fallback ranks (0,1), (1,2) only: 0.
  early = [[0.0, 1.0, 3.0, 2.0, 1.0]]
  np.testing.assert_allclose(_per_clip(early, [3], m), [0.375])
  np.testing.assert_allclose(_per_clip(early, [-1], m), [0.0])
  # Apex 0 is ranked as apex 1: the first pair rises, the rest fall.
  np.testing.assert_allclose(_per_clip([[0.0, 1.0, 0.0, -1.0]], [0], m), [0.0])
  np.testing.assert_allclose(_per_clip([[1.0, 0.0, -1.0, -2.0]], [0], m),
                             [1.5 / 3])
  # "clip" ignores the apex.
  np.testing.assert_array_equal(_per_clip(up, [2], m, "clip"), [0.0])
  # One frame: no pairs, no loss.
  np.testing.assert_array_equal(_per_clip([[3.0]], [0], m), [0.0])


def test_ranking_loss_masks_rows():
  scores = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0],    # apex 2: 0.75
                      [9.0, -7.0, 5.0, 1e6, -3.0],  # padding: anything
                      [0.0, 1.0, 3.0, 2.0, 1.0]])   # apex 3: 0.375
  apex = jnp.array([2, -1, 3], jnp.int32)
  mask = jnp.array([1.0, 0.0, 1.0])
  loss = rank_pooling.ranking_loss(scores, apex, mask, margin=0.5)
  assert float(loss) == pytest.approx((0.75 + 0.375) / 2, rel=1e-6)
  # The padding row contributes neither value nor gradient.
  grad = jax.grad(lambda s: rank_pooling.ranking_loss(s, apex, mask, margin=0.5))(scores)
  np.testing.assert_array_equal(np.asarray(grad[1]), 0.0)
  assert np.any(np.asarray(grad[0]) != 0) and np.any(np.asarray(grad[2]) != 0)
  inf_row = scores.at[1].set(jnp.inf)
  assert float(rank_pooling.ranking_loss(inf_row, apex, mask, margin=0.5)) == float(loss)
  # Pure jnp: jit and vmap (fold-stacked batches) give the same numbers.
  jitted = jax.jit(lambda s, a, m: rank_pooling.ranking_loss(s, a, m, margin=0.5))
  assert float(jitted(scores, apex, mask)) == pytest.approx(float(loss))
  stacked = jax.vmap(lambda s, a, m: rank_pooling.ranking_loss(s, a, m, margin=0.5))(
      jnp.stack([scores, scores]), jnp.stack([apex, apex]),
      jnp.stack([mask, mask]))
  np.testing.assert_allclose(stacked, [float(loss)] * 2, rtol=1e-6)
  # No mask: the plain mean.
  assert float(rank_pooling.ranking_loss(scores[::2], apex[::2], margin=0.5)) == (
      pytest.approx((0.75 + 0.375) / 2, rel=1e-6))


def test_aux_losses_masked():
  b, t, s = 4, 5, 8
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.uniform(size=(b, s, s)), jnp.float32)
  pred = target.at[2:].set(1.0 - target[2:])  # clips 2, 3 are badly wrong
  scores = jnp.tile(jnp.arange(t, dtype=jnp.float32), (b, 1))
  scores = scores.at[2:].set(-scores[2:])  # and badly ranked
  aux = {"dynamic_image": pred, "rank_scores": scores}
  batch = {"dynamic_image": target, "mask": jnp.array([1.0, 1.0, 0.0, 0.0])}
  out = fdp.aux_losses(aux, batch, di_weight=3.0, rank_weight=2.0,
                       rank_margin=0.5, rank_window="clip")
  assert float(out["dynamic_image_mse"]) == pytest.approx(0.0, abs=1e-7)
  assert float(out["rank"]) == pytest.approx(0.0, abs=1e-7)
  batch["mask"] = jnp.array([0.0, 0.0, 1.0, 0.0])
  out = fdp.aux_losses(aux, batch, di_weight=3.0, rank_weight=2.0,
                       rank_margin=0.5, rank_window="clip")
  mse = float(jnp.mean(jnp.square(pred[2] - target[2])))
  assert float(out["dynamic_image_mse"]) == pytest.approx(3.0 * mse, rel=1e-5)
  assert float(out["rank"]) == pytest.approx(2.0 * 1.5, rel=1e-5)
  # Zero weights drop the terms; a missing target is a clear error.
  assert fdp.aux_losses(aux, batch, di_weight=0.0, rank_weight=0.0) == {}
  with pytest.raises(ValueError, match="dynamic_image"):
    fdp.aux_losses(aux, {"mask": batch["mask"]}, di_weight=1.0)


def test_aux_losses_use_batch_apex_index():
  scores = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0]] * 2)
  aux = {"rank_scores": scores}
  batch = {"mask": jnp.array([1.0, 0.0]),
           "apex_index": jnp.array([2, 2], jnp.int32)}
  kw = dict(di_weight=0.0, rank_weight=2.0, rank_margin=0.5,
            rank_window="to_peak")
  on = fdp.aux_losses(aux, batch, rank_use_apex=True, **kw)["rank"]
  assert float(on) == pytest.approx(1.5)
  off = fdp.aux_losses(aux, batch, rank_use_apex=False, **kw)["rank"]
  assert float(off) == 0.0
  # Default: no key frames (the paper's setting), every pair rises.
  assert float(fdp.aux_losses(aux, batch, di_weight=0.0, rank_weight=2.0,
                              rank_margin=0.5)["rank"]) == 0.0
  aux_rev = {"rank_scores": scores[:, ::-1]}
  assert float(fdp.aux_losses(aux_rev, batch, di_weight=0.0, rank_weight=2.0,
                              rank_margin=0.5)["rank"]) == pytest.approx(3.0)
  del batch["apex_index"]
  on = fdp.aux_losses(aux, batch, rank_use_apex=True, **kw)["rank"]
  assert float(on) == 0.0


def test_gradients_reach_rank_scorer_and_decoder_and_train(tiny):
  model, variables = tiny
  batch = _batch()

  def loss(params, batch_stats, weight_ce):
    (logits, aux), new = model.apply(
        {"params": params, "batch_stats": batch_stats}, batch["frames"],
        train=True, rngs={"dropout": jax.random.PRNGKey(1)},
        mutable=["batch_stats"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    terms = fdp.aux_losses(aux, batch, di_weight=1.0, rank_weight=1.0,
                           rank_window="clip")
    return weight_ce * ce.mean() + sum(terms.values()), new["batch_stats"]

  grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
  params, stats = variables["params"], variables["batch_stats"]
  norm = lambda tree: float(optax.tree.norm(tree))
  (_, _), grads = grad(params, stats, 1.0)
  assert norm(grads["rank_fc1"]) > 0 and norm(grads["rank_fc2"]) > 0
  assert norm(grads["dyimg_net"]) > 0
  assert norm(grads["frame_rep"]) > 0
  # The auxiliary losses alone train the shared path through the pooling.
  (_, _), grads = grad(params, stats, 0.0)
  assert norm(grads["rank_proj"]) > 0 and norm(grads["rank_fc2"]) > 0
  assert norm(grads["head_fc2"]) == 0.0
  # A few Adam steps on the fixed batch lower the loss (same compiled grad).
  tx = optax.adam(3e-3)

  @jax.jit
  def update(params, opt, grads):  # jit: eager optax compiles op by op
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  opt = tx.init(params)
  losses = []
  for _ in range(4):
    (value, stats), grads = grad(params, stats, 1.0)
    losses.append(float(value))
    params, opt = update(params, opt, grads)
  assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name,arg", [
    ("fdp_synthetic", None), ("fdp_synthetic", "tiny"),
    ("fdp_synthetic", "official_width"), ("fdp_synthetic", "apex_ranking"),
    ("fdp_samm", None),
    ("fdp_casme2", "3class"), ("fdp_casme_sq", "4class"), ("fdp_casme3", None),
    ("fdp_composite", None)])
def test_configs_instantiate(name, arg):
  sys.path.insert(0, ROOT)
  import importlib  # pylint: disable=g-import-not-at-top
  from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mer_jax import models  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  config_lib.validate(config)
  assert "dynamic_image" in config.input.targets
  model = models.get_model(config.model_name, 3, **config.model.to_dict())
  i = config.input
  x = jax.ShapeDtypeStruct((2, i.num_frames, i.size, i.size, i.channels),
                           jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0)}, x, train=False), x)
  logits, aux = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                               variables, x)
  assert logits.shape == (2, 3)
  assert aux["dynamic_image"].shape == (2, i.size, i.size)
  if arg == "official_width":  # the count the docstrings give
    n = sum(p.size for p in jax.tree.leaves(variables["params"]["frame_rep"]))
    assert n == 26_064_288, n
  # The paper's setting: no key frames unless a config (by name) asks.
  assert config.aux_loss.get("rank_use_apex", False) == (arg == "apex_ranking")
  batch = {"dynamic_image": jnp.zeros((2, i.size, i.size)), "mask": jnp.ones(2),
           "apex_index": jnp.array([i.num_frames // 2, -1], jnp.int32)}
  terms = jax.eval_shape(lambda a: fdp.aux_losses(a, batch, **config.aux_loss),
                         aux)
  assert set(terms) <= {"dynamic_image_mse", "rank"}
