"""Rank pooling over time and the chronological ranking loss (model `fdp`).

`temporal_pool_weights` turns per-frame rank scores `[B, T]` into the
coefficients that pool frame features into a dynamic representation:
approximate rank pooling (Bilen et al., the coefficients of the official
dynamic-image target, `mer_jax.data.dynamic_image.rank_pool_weights`)
re-weighted by the scores. `ranking_loss` is the pairwise hinge that asks the
scores to follow the chronological order (`fdp` choices 3 and 4). Its
options (not the defaults of `fdp.aux_losses`), reported as such:
* `rank_use_apex=True` (apex-supervised ranking, uses key frames): with
  an annotated apex (`batch["apex_index"] = a >= 0`, the sampled frame
  nearest to the record's apex, see `mer_jax.data.sampling.apex_index`)
  and `rank_window="to_peak"`, pairs up to frame a must rise and pairs
  after it must fall (`relu(margin + (s_{t+1} - s_t))`); a = 0 is ranked
  as a = 1 (the onset frame is the zero-motion reference, never the apex).
* `rank_window="to_peak"` with an unknown apex (`apex_index = -1`: eval
  padding, a record without an annotated apex, which the builders store
  with `apex_annotated` False and reaches the batch as -1, all of SMIC,
  or `rank_use_apex=False`): only the pairs up to the frame with the
  highest score (a stop-gradient estimate of the peak, at least the first
  pair) must rise; later pairs are unranked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.data import dynamic_image
from mer_jax.models import common

Array = jax.Array


def temporal_pool_weights(scores: Array, pooling: str = "rank_pool",
                          temperature: float = 1.0) -> Array:
  """Per-frame pooling coefficients `[B, T]` from rank scores `[B, T]`.

  "rank_pool" (default, order-aware): `alpha_t * T * softmax_t(s / tau)`,
    where `alpha` are Bilen et al.'s approximate rank pooling coefficients
    over the chronological position t (`dynamic_image.rank_pool_weights`,
    the same ones that make the dynamic-image target), scaled so that the
    positive and the negative ones each sum to 1 (they sum to 0). With equal
    scores this is approximate rank pooling of the rank features; the scores
    re-weight frames (mean factor 1). Swapping two frames changes the result.
  "softmax" (the ablation, this module's pooling before issue 14):
    `softmax_t(s / tau)`, a weighted mean that is the same for any order of
    the frames (given their scores).
  """
  t = scores.shape[1]
  soft = jax.nn.softmax(scores / temperature, axis=1)
  if pooling == "softmax":
    return soft
  if pooling != "rank_pool":
    raise ValueError(f"fdp: pooling={pooling!r}: 'rank_pool' or 'softmax'")
  alpha = dynamic_image.rank_pool_weights(t)
  alpha = 2.0 * alpha / max(np.abs(alpha).sum(), 1e-12)
  return jnp.asarray(alpha, scores.dtype)[None] * (t * soft)


def _rank_pairs(scores: Array, apex_index: Array | None,
                window: str) -> tuple[Array, Array]:
  """Which consecutive pairs are ranked and in which direction.

  Returns `(sign, ranked)`, both `[B, T-1]`: pair (t, t+1) is ranked when
  `ranked` is 1 and should satisfy `sign * (s[t+1] - s[t]) >= margin`
  (+1: rise, -1: fall). See `ranking_loss`.
  """
  b, t = scores.shape
  idx = jnp.arange(t - 1)[None]  # pair (t, t+1) -> t
  ones = jnp.ones((b, t - 1), scores.dtype)
  if window == "clip":
    return ones, ones
  if window != "to_peak":
    raise ValueError(f"rank_window={window!r}: 'to_peak' or 'clip'")
  # No annotated apex: pairs up to the highest-scoring frame (a stop-gradient
  # apex estimate) rise; a peak at frame 0 would leave none, so the first pair
  # is always ranked (the onset is never the apex). Later pairs are unranked.
  peak = jnp.argmax(jax.lax.stop_gradient(scores), axis=1)  # [B]
  est_ranked = ((idx + 1 <= peak[:, None]) | (idx == 0)).astype(scores.dtype)
  if apex_index is None:
    return ones, est_ranked
  apex = jnp.asarray(apex_index, jnp.int32).reshape(b, 1)
  known = apex >= 0
  # Annotated apex a: pairs up to it rise, pairs after it fall. a = 0 is
  # ranked as a = 1: the onset frame is the motion reference (zero motion
  # input) and is never the apex.
  a = jnp.maximum(apex, 1)
  apex_sign = jnp.where(idx + 1 <= a, 1.0, -1.0).astype(scores.dtype)
  sign = jnp.where(known, apex_sign, ones)
  ranked = jnp.where(known, ones, est_ranked)
  return sign, ranked


def ranking_loss_per_clip(scores: Array, apex_index: Array | None = None, *,
                          margin: float = 0.1,
                          window: str = "to_peak") -> Array:
  """Per-clip pairwise hinge on consecutive frames, `[B, T]` -> `[B]`.

  `relu(margin - sign_t * (s[t+1] - s[t]))` averaged over the ranked pairs
  (t, t+1); see `ranking_loss` for which pairs and signs.
  """
  sign, ranked = _rank_pairs(scores, apex_index, window)
  diff = scores[:, 1:] - scores[:, :-1]  # [B, T-1]
  hinge = jax.nn.relu(margin - sign * diff)
  return (jnp.sum(hinge * ranked, axis=1)
          / jnp.maximum(jnp.sum(ranked, axis=1), 1.0))


def ranking_loss(scores: Array, apex_index: Array | None = None,
                 mask: Array | None = None, *, margin: float = 0.1,
                 window: str = "to_peak") -> Array:
  """Chronological ranking hinge, masked mean over clips: a scalar.

  Args:
    scores: rank scores `[B, T]`, frame t of the sampled clip.
    apex_index: int `[B]`, the sampled frame nearest to the annotated apex
      (`batch["apex_index"]`), -1 where unknown; None = unknown everywhere.
    mask: `[B]`, 1 = real clip; rows with 0 contribute nothing. None = all
      real.
    margin: the hinge margin between consecutive frames' scores.
    window: which pairs (t, t+1) are ranked:
      "to_peak" with `apex_index = a >= 0`: every pair; those with t+1 <= a
        must rise (`s[t+1] - s[t] >= margin`), those with t >= a must fall
        (`s[t] - s[t+1] >= margin`); a = 0 is treated as a = 1 (the onset
        frame is never the apex).
      "to_peak" with `apex_index = -1`: the pairs up to the highest-scoring
        frame (a stop-gradient apex estimate, at least the first pair) must
        rise; later pairs are not ranked.
      "clip": every pair must rise, whatever the apex (Bilen-style rank
        pooling over the whole clip).
    Each clip's loss is the mean hinge over its ranked pairs, so it is zero
    exactly when every ranked pair keeps its order by at least `margin`.
  """
  per_clip = ranking_loss_per_clip(scores, apex_index, margin=margin,
                                   window=window)
  return common.masked_mean(per_clip, mask)
