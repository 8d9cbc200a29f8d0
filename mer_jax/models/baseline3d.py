"""A compact (2+1)-D CNN on frames and frame differences: the sanity baseline.

Not a published method. It exists so the data path, protocol and metrics can
be checked end to end with a model that can see motion. Each frame's
difference to the first (onset) frame is embedded by non-overlapping spatial
patches (reshape + Dense: a strided Conv3D backward pass is very slow on
XLA:CPU) with its own LayerNorm, optionally summed with an appearance stream
of the frames themselves, then stride-1 spatial convolutions per frame and a
temporal convolution, max-pooled over time. The spatial layout is kept to the
head because *where* the face moves (brows, mouth corners) is the class.

Why separate streams: micro-expression differences are ~1% of the pixel
range. Concatenated with the frames as input channels, they were drowned by
appearance and training loss stayed at ln(K) on the synthetic corpus; with
their own normalisation the same network fits (measured on one LOSO fold of
synthetic_me/s64, 300 steps: UF1 0.10 concatenated, 0.83 two streams, 0.93
motion only, so `appearance` defaults to off).
"""

from __future__ import annotations

from typing import Sequence

import einops
import flax.linen as nn
import jax.numpy as jnp


class Model(nn.Module):
  """Baseline; `frames` `[B, T, H, W, C]` -> logits `[B, num_classes]`."""
  num_classes: int
  patch: int = 4
  widths: Sequence[int] = (24, 32)
  temporal_kernel: int = 3
  head_pool: int = 4  # spatial grid kept for the head: head_pool x head_pool
  dropout: float = 0.2
  appearance: bool = False  # add a stream of the frames themselves

  @nn.compact
  def __call__(self, frames: jnp.ndarray, *, train: bool):
    b, t = frames.shape[:2]
    p = self.patch

    def embed(z, name):  # [B, T, H, W, C] -> [B*T, H/p, W/p, D]
      z = einops.rearrange(z, "b t (h p) (w q) c -> (b t) h w (p q c)", p=p, q=p)
      z = nn.Dense(self.widths[0], name=f"{name}_embed")(z)
      return nn.LayerNorm(name=f"{name}_norm")(z)

    # Motion relative to onset is what separates micro-expression classes.
    x = embed(frames - frames[:, :1], "motion")
    if self.appearance:
      x = x + embed(frames, "appearance")
    for i, width in enumerate(self.widths):
      x = nn.Conv(width, (3, 3), padding="SAME", name=f"conv{i}")(x)
      x = nn.GroupNorm(num_groups=min(8, width), name=f"norm{i}")(x)
      x = nn.gelu(x)
    h = x.shape[1]
    k = max(h // self.head_pool, 1)
    x = nn.avg_pool(x, (k, k), strides=(k, k))  # [B*T, P, P, D]
    x = einops.rearrange(x, "(b t) h w d -> b t (h w d)", b=b, t=t)
    x = nn.Conv(self.widths[-1] * 2, (self.temporal_kernel,), padding="SAME",
                name="temporal")(x)  # [B, T, D']
    x = nn.gelu(x)
    features = x.max(axis=1)  # the apex may be anywhere in the clip
    features = nn.Dropout(self.dropout, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes, name="head")(features)
    return logits, {"features": features}
