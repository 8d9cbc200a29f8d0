"""Checks `fdp_official` against the official-PyTorch reference vectors.

The reference format is the one of `make_ref.py` (FDP reference README): torch
state_dict entries under their own names, plus `in/*`, `target/*`, `out/*`,
`loss/*`, `calib/*`, `train/step{k}/*` and optional `hook/*` entries. Widths
are inferred from the stored shapes, so the same code checks the reduced
reference file and the full official model's.

Tolerance per tensor: `max|a - b| <= 1e-4 * max|ref| + 1e-6`; integer
outputs (dynamic-image target, SegNet pool indices) must match exactly (pool
indices only where the reference window has a unique maximum).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mer_jax.data import dynamic_image as di_lib
from mer_jax.models import fdp_official as fdp
from mer_jax.models.fdp_official import torch_layers

RTOL, ATOL = 1e-4, 1e-6
# Gradients that are mathematically zero (a bias feeding a train-mode
# BatchNorm) are float32 cancellation noise; both sides must be below this
# fraction of the step's largest gradient.
NULL_GRAD_RTOL = 1e-5
LR, WEIGHT_DECAY, DY_WEIGHT = 1e-4, 1e-3, 100.0


def official_optimizer(lr: float = LR, weight_decay: float = WEIGHT_DECAY
                       ) -> optax.GradientTransformation:
  """torch.optim.Adam(lr, weight_decay) = coupled L2 then Adam (eps 1e-8).

  torch: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), which equals optax's
  lr * m_hat / (sqrt(v_hat) + eps) with eps_root = 0.
  """
  return optax.chain(optax.add_decayed_weights(weight_decay),
                     optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


def official_losses(logits: jax.Array, aux: Mapping[str, jax.Array],
                    labels: jax.Array, di_target: jax.Array,
                    dy_weight: float = DY_WEIGHT) -> dict[str, jax.Array]:
  """train.py losses: me = mean CE, dy = MSE(DI), final = dy_weight*dy + me."""
  me = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  dy_w = fdp.aux_losses(aux, {"dynamic_image": di_target}, dy_weight)[
      "dynamic_image_mse"]
  return {"me": me, "dy": dy_w / dy_weight, "final": dy_w + me}


def make_train_step(model: fdp.Model, tx: optax.GradientTransformation,
                    dy_weight: float = DY_WEIGHT,
                    return_grads: bool = True) -> Callable[..., Any]:
  """One official training step (un-jitted; wrap in jax.jit).

  Returns step(params, batch_stats, opt_state, frames [B,T,H,W,C],
  labels [B], di_target [B,H,W], rng) -> (params, batch_stats, opt_state,
  out) where out has losses, logits, dynamic_image and (if `return_grads`;
  the checks need them, a training loop does not) grads.
  """
  def step(params, batch_stats, opt_state, frames, labels, di_target, rng):
    def loss_fn(p):
      (logits, aux), new_vars = model.apply(
          {"params": p, "batch_stats": batch_stats}, frames, train=True,
          mutable=["batch_stats"], rngs={"dropout": rng})
      losses = official_losses(logits, aux, labels, di_target, dy_weight)
      return losses["final"], (losses, logits, aux["dynamic_image"],
                               new_vars["batch_stats"])
    grads, (losses, logits, di, new_bs) = jax.grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    out = dict(losses=losses, logits=logits, dynamic_image=di)
    if return_grads:
      out["grads"] = grads
    return params, new_bs, opt_state, out
  return step


def frames_from_ref(x: np.ndarray) -> np.ndarray:
  """Official model input (B, 1, T, C, H, W) -> [B, T, H, W, C]."""
  return np.ascontiguousarray(np.asarray(x)[:, 0].transpose(0, 1, 3, 4, 2))


class _Results:
  """Collects per-tensor errors."""

  def __init__(self):
    self.err: dict[str, float] = {}
    self.ok: dict[str, bool] = {}

  def close(self, name: str, a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
      self.err[name], self.ok[name] = float("inf"), False
      return
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    self.err[name] = diff / scale if scale > 0 else diff
    self.ok[name] = diff <= RTOL * scale + ATOL

  def below(self, name: str, a, bound: float):
    """max|a| <= bound (mathematically-zero tensors); err = max|a| / bound."""
    m = float(np.max(np.abs(np.asarray(a, np.float64))))
    self.err[name], self.ok[name] = m / bound, m <= bound

  def close_adam(self, name: str, a, b, ambiguous, flip: float):
    """`close` on unambiguous elements, |a - b| <= flip + tol on the rest."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = np.abs(a - b)
    scale = float(np.max(np.abs(b)))
    tol = RTOL * scale + ATOL
    clear = float(np.max(d[~ambiguous])) if np.any(~ambiguous) else 0.0
    amb = float(np.max(d[ambiguous])) if np.any(ambiguous) else 0.0
    self.err[name] = clear / scale if scale > 0 else clear
    self.ok[name] = clear <= tol and amb <= flip * (1 + 1e-3) + tol
    self.n_ambiguous = getattr(self, "n_ambiguous", 0) + int(ambiguous.sum())

  def exact(self, name: str, a, b, where=None):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
      self.err[name], self.ok[name] = float("inf"), False
      return
    neq = a != b
    if where is not None:
      neq = neq & where
    self.err[name] = float(np.mean(neq)) if neq.size else 0.0
    self.ok[name] = not bool(np.any(neq))

  def summary(self) -> dict[str, Any]:
    """Groups per-parameter entries ('.../grad/<param>' -> '.../grad/*')."""
    grouped: dict[str, float] = {}
    for name, e in self.err.items():
      key = re.sub(r"^(train/step\d+/(grad|grad_null|state))/.*$", r"\1/*", name)
      key = re.sub(r"^(calib/)?out/segnet_pool\d_indices$",
                   r"\1out/segnet_pool*_indices", key)
      grouped[key] = max(grouped.get(key, 0.0), e)
    failed = sorted(n for n, ok in self.ok.items() if not ok)
    return {"max_rel_err": grouped, "ok": not failed, "failed": failed,
            "n_checked": len(self.ok),
            "n_adam_sign_ambiguous": getattr(self, "n_ambiguous", 0)}


def null_gradient_params(state_dict: Mapping[str, Any]) -> set[str]:
  """Parameters whose train-mode gradient is mathematically zero.

  A per-channel bias followed (through linear ops only) by a train-mode
  BatchNorm is removed by the mean subtraction: every SegNet conv bias except
  conv11d's, and `mlp.conv2.bias` of the last LFA block of each stage (its
  output feeds the next stage's PatchEmbed conv + BN, or the final BN).
  """
  null = set()
  for k in state_dict:
    m = re.fullmatch(r"dyimg_net\.conv(\w+)\.bias", k)
    if m and f"dyimg_net.bn{m.group(1)}.weight" in state_dict:
      null.add(k)
    m = re.fullmatch(r"frame_rep\.features\.(\d+)\.mlp\.conv2\.bias", k)
    if m:
      nxt = int(m.group(1)) + 1
      if (f"frame_rep.features.{nxt}.patch_embed.conv.weight" in state_dict or
          f"frame_rep.features.{nxt}.mhca.group_conv3x3.weight"
          not in state_dict):
        null.add(k)
  return null


def _has(ref: Mapping[str, Any], key: str) -> bool:
  return key in ref


def _check_pool_indices(res: _Results, prefix: str, ref, inter):
  """SegNet argmax indices vs `out/segnet_pool{k}_indices`.

  Only windows with a unique maximum in the reference activations count (ties
  are broken by float noise; they do exist with the degenerate default init).
  Needs `hook/dyimg_net.bn{12,22,33,43,53}` (pre-ReLU); skipped without them.
  """
  last_bn = {1: "bn12", 2: "bn22", 3: "bn33", 4: "bn43", 5: "bn53"}
  for k, bn in last_bn.items():
    key = f"{prefix}out/segnet_pool{k}_indices"
    hook = f"{prefix}hook/dyimg_net.{bn}"
    if not (_has(ref, key) and _has(ref, hook)):
      continue
    ours = torch_layers.pool_indices_to_torch(
        inter["dyimg_net"][f"segnet_pool{k}_argmax"][0])
    act = np.maximum(np.asarray(ref[hook]), 0.0)  # (B, C, H, W)
    n, c, h, w = act.shape
    win = act.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    win = np.sort(win.reshape(n, c, h // 2, w // 2, 4), axis=-1)
    gap = win[..., -1] - win[..., -2]
    unique = gap > 1e-4 * max(float(np.max(np.abs(act))), 1e-12)
    res.exact(key, ours, ref[key], where=unique)


def _check_forward(res: _Results, prefix: str, ref, eval_fn, variables,
                   frames, labels, di_target):
  (logits, aux), state = eval_fn(variables, frames)
  inter = state["intermediates"]
  out = prefix + "out/"
  res.close(out + "logits", logits, ref[out + "logits"])
  if _has(ref, out + "probs"):
    res.close(out + "probs", jax.nn.softmax(logits, -1), ref[out + "probs"])
  res.close(out + "frame_features", aux["frame_features"],
            ref[out + "frame_features"])
  if _has(ref, out + "dynamic_rep_5d"):  # not in the test subset
    r5 = np.asarray(aux["frame_features"]).reshape(ref[out + "dynamic_rep_5d"]
                                                   .shape)
    res.close(out + "dynamic_rep_5d", r5, ref[out + "dynamic_rep_5d"])
  if _has(ref, out + "dynamic_representation"):  # torch (B, 8, 64, 64, 1)
    res.close(out + "dynamic_representation", aux["dynamic_representation"],
              np.asarray(ref[out + "dynamic_representation"])[..., 0]
              .transpose(0, 2, 3, 1))
  if _has(ref, out + "mer_pooled"):
    res.close(out + "mer_pooled", inter["mer"]["mer_pooled"][0],
              np.asarray(ref[out + "mer_pooled"])[..., 0].transpose(0, 2, 3, 1))
  res.close(out + "dyimg_logits", aux["dynamic_image_logits"],
            ref[out + "dyimg_logits"])
  res.close(out + "dyimg", aux["dynamic_image"], ref[out + "dyimg"])
  _check_pool_indices(res, prefix, ref, inter)
  losses = official_losses(logits, aux, labels, di_target)
  for k in ("me", "dy", "final"):
    key = f"{prefix}loss/{k}"
    if _has(ref, key):
      res.close(key, losses[k], ref[key])


def run_reference_checks(ref: Mapping[str, np.ndarray],
                         max_train_steps: int = 1) -> dict[str, Any]:
  """Runs every check the reference supports.

  Args:
    ref: the reference arrays (an npz mapping; entries are read lazily).
    max_train_steps: how many `train/step{k}` to replay (k = 1..). Step 1 is
      the contract; later steps inherit step 1's sign-ambiguous elements
      (see `close_adam`) and are only indicative.

  Returns:
    {'max_rel_err': {group: err}, 'ok': bool, 'failed': [names],
     'n_checked': int, 'config': inferred Model kwargs}.
  """
  res = _Results()
  sd_keys = fdp.state_dict_keys(ref)
  state_dict = {k: np.asarray(ref[k]) for k in sd_keys}
  config = fdp.infer_config(state_dict)
  variables = fdp.load(state_dict, config)

  # Dynamic-image target from the raw uint8 frames.
  u8 = np.asarray(ref["in/frames_uint8"])  # (B, T, H, W)
  res.exact("target/rank_pool_weights_fw",
            di_lib.rank_pool_weights(u8.shape[1]),
            ref["target/rank_pool_weights_fw"])
  di_u8 = np.stack([
      di_lib.dynamic_image_uint8(clip.astype(np.float32) / np.float32(255.0))
      for clip in u8])
  res.exact("target/dyimg_uint8", di_u8, ref["target/dyimg_uint8"])
  if _has(ref, "target/dyimg_raw_float64"):
    res.exact("target/dyimg_raw_float64",
              np.stack([di_lib.dynamic_image_raw(c.astype(np.float32) /
                                                 np.float32(255.0))
                        for c in u8]), ref["target/dyimg_raw_float64"])
  di_target = np.stack([di_lib.dynamic_image(clip[..., None]) for clip in u8])
  res.exact("target/dyimg", di_target, ref["target/dyimg"])

  frames = frames_from_ref(ref["in/x"])
  labels = np.asarray(ref["in/label"]).astype(np.int32)

  # Eval-mode forwards: plain and calibrated BN (one compilation for both).
  model = fdp.Model(**config)
  eval_fn = jax.jit(lambda v, x: model.apply(
      v, x, train=False, mutable=["intermediates"]))
  _check_forward(res, "", ref, eval_fn, variables, frames, labels, di_target)
  calib_keys = [k for k in ref if k.startswith("calib/state/")]
  if calib_keys:
    calib_sd = dict(state_dict)
    calib_sd.update({k[len("calib/state/"):]: np.asarray(ref[k])
                     for k in calib_keys})
    _check_forward(res, "calib/", ref, eval_fn, fdp.load(calib_sd, config),
                   frames, labels, di_target)

  # Train-mode steps, DropPath off as in the reference. XLA's conv on every
  # layer (im2col_max_pixels=0): this model's float32 train-mode gradients
  # are chaotic. After BN + ReLU, values within ~1e-7 of each other or of 0
  # decide SegNet's max-pool argmax and the ReLU masks, so summing stage 4
  # in another order (the im2col path, equal to 1e-13 in float64) moves
  # 113 reference gradients by up to 1.9e-3 relative, against 8.7e-5 here.
  # The eval forwards above run the default (im2col) path.
  train_model = fdp.Model(**dict(config, path_dropout=0.0,
                                 im2col_max_pixels=0))
  tx = official_optimizer()
  step_fn = jax.jit(make_train_step(train_model, tx))
  params, bstats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  rng = jax.random.key(0)
  prev = dict(state_dict)  # torch-named parameters before the step
  null = null_gradient_params(state_dict)
  for k in range(1, max_train_steps + 1):
    pre = f"train/step{k}/"
    if not _has(ref, pre + "loss_final"):
      break
    params, bstats, opt_state, out = step_fn(
        params, bstats, opt_state, frames, labels, di_target, rng)
    for name in ("me", "dy", "final"):
      res.close(f"{pre}loss_{name}", out["losses"][name],
                ref[f"{pre}loss_{name}"])
    res.close(pre + "logits", out["logits"], ref[pre + "logits"])
    res.close(pre + "dyimg", out["dynamic_image"], ref[pre + "dyimg"])
    grads = fdp.to_state_dict({"params": out["grads"]})
    ref_grads = {n: np.asarray(ref[pre + "grad/" + n]) for n in grads
                 if _has(ref, pre + "grad/" + n)}
    # float32 cancellation floor of this step's gradients (our gradients:
    # a reference file may store only some of its own).
    gmax = max(float(np.max(np.abs(g))) for g in grads.values())
    null_tol = NULL_GRAD_RTOL * gmax
    for name, g in ref_grads.items():
      if name in null:
        res.below(pre + "grad_null/" + name, grads[name], null_tol)
      else:
        res.close(pre + "grad/" + name, grads[name], g)
    state = fdp.to_state_dict({"params": params, "batch_stats": bstats})
    for name, v in state.items():
      key = pre + "state/" + name
      if not _has(ref, key):
        continue
      if name not in grads or k > 1:
        res.close(key, v, ref[key])
        continue
      # Adam's first step is ~lr * sign(g + wd * p): an element whose
      # effective gradient is within the gradient error of 0 may flip sign;
      # those may differ by up to 2 * lr, the rest must match as usual.
      g = ref_grads.get(name, grads[name])
      g_tol = (null_tol if name in null
               else RTOL * float(np.max(np.abs(g))) + ATOL)
      g_eff = g + WEIGHT_DECAY * np.asarray(prev[name])
      ambiguous = np.abs(g_eff) <= 2.0 * g_tol
      res.close_adam(key, v, ref[key], ambiguous, 2.0 * LR)

  summary = res.summary()
  summary["config"] = {k: list(v) if isinstance(v, tuple) else v
                       for k, v in config.items()}
  return summary
