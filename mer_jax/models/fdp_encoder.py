"""The paper's frame encoder of `fdp`: a local-global feature-aware transformer.

`FrameEncoder`: [N, H, W, C] (frames folded into the batch) -> [N, h, w, D];
patch embedding (reshape + Dense) + LayerNorm, then per stage a 2x2 patch
merge (after the first), local and global blocks. See `mer_jax.models.fdp`
for the choices (motion input, folded frames, reshape + Dense embeddings).

Blocks (NextViT-style, as the paper describes them and the released code
defines them):
* local block: x += MHCA(x); x += MLP(BN(x)). MHCA ("multi-head convolutional
  attention") = grouped 3x3 conv (one group per head of `head_dim` channels)
  -> BN -> ReLU -> pointwise (1x1) conv. The official code's MHCA is one dense
  3x3 conv (spec 6.2); this is the paper's description.
* global block: x += E-MHSA(BN(x)); x += MLP(BN(x)). E-MHSA = multi-head
  self-attention whose keys/values come from the map average-pooled by
  `sr_ratios[s]` (+ BN), i.e. efficient MHSA with spatial reduction. The
  official code defines E_MHSA/GFA but never instantiates them (spec 6.1).
  NextViT's NTB also splits channels between E-MHSA and an MHCA branch
  (`mix_block_ratio`); we keep the plain residual form.
* MLP: Dense(mlp_ratio * C) -> ReLU -> Dense(C). Stochastic depth (`drop_path`,
  linearly increasing over blocks) on every residual branch.
"""

from __future__ import annotations

from typing import Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jnp.ndarray


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  """The BatchNorm of every `fdp` block (batch statistics when `train`)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, name=name)


def merge2x2(x: Array) -> Array:
  """[N, h, w, C] -> [N, ceil(h/2), ceil(w/2), 4C] (edge-padded when odd)."""
  h, w = x.shape[1:3]
  if h % 2 or w % 2:
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  return einops.rearrange(x, "n (h p) (w q) c -> n h w (p q c)", p=2, q=2)


class DropPath(nn.Module):
  """Per-sample stochastic depth (scaled by 1/keep); identity in eval."""
  rate: float

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    if not train or self.rate <= 0.0:
      return x
    keep = 1.0 - self.rate
    rng = self.make_rng("dropout")
    m = jax.random.bernoulli(rng, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return x * m / keep


class Mlp(nn.Module):
  ratio: float

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    x = nn.relu(nn.Dense(max(int(c * self.ratio), 1), name="fc1")(x))
    return nn.Dense(c, name="fc2")(x)


class MHCA(nn.Module):
  """Multi-head convolutional attention: grouped 3x3 -> BN -> ReLU -> 1x1."""
  head_dim: int

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    c = x.shape[-1]
    heads = max(c // self.head_dim, 1) if c % self.head_dim == 0 else 1
    g = heads
    # A grouped kernel [3, 3, C/g, C] run as a dense conv with its block-
    # diagonal expansion: the same function, but XLA:CPU's grouped-conv
    # backward is ~3x slower than the dense one (measured here).
    kernel = self.param("group_conv3x3", nn.initializers.lecun_normal(),
                        (3, 3, c // g, c))
    k = kernel.reshape(3, 3, c // g, g, c // g)
    k = jnp.einsum("xyigo,hg->xyhigo", k, jnp.eye(g, dtype=k.dtype))
    k = k.reshape(3, 3, c, c)
    x = jax.lax.conv_general_dilated(
        x, k.astype(x.dtype), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = nn.relu(batch_norm(train, "norm")(x))
    return nn.Dense(c, use_bias=False, name="projection")(x)


class Block(nn.Module):
  """What the local and the global block share: heads, MLP, stochastic depth."""
  head_dim: int
  mlp_ratio: float
  drop_path: float


class LocalBlock(Block):
  """Local feature-aware block: x + MHCA(x), then x + MLP(BN(x))."""

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dp = DropPath(self.drop_path)
    x = x + dp(MHCA(self.head_dim, name="mhca")(x, train=train), train=train)
    y = Mlp(self.mlp_ratio, name="mlp")(batch_norm(train, "norm")(x))
    return x + dp(y, train=train)


class EMHSA(nn.Module):
  """Efficient multi-head self-attention; keys/values pooled by `sr_ratio`."""
  head_dim: int
  sr_ratio: int

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    n, h, w, c = x.shape
    heads = max(c // self.head_dim, 1) if c % self.head_dim == 0 else 1
    dh = c // heads
    q = nn.DenseGeneral((heads, dh), name="q")(x.reshape(n, h * w, c))
    kv = x
    sr = min(self.sr_ratio, h, w)
    if sr > 1:
      kv = nn.avg_pool(kv, (sr, sr), strides=(sr, sr), padding="SAME")
      kv = batch_norm(train, "sr_norm")(kv)
    kv = kv.reshape(n, -1, c)
    k = nn.DenseGeneral((heads, dh), name="k")(kv)
    v = nn.DenseGeneral((heads, dh), name="v")(kv)
    att = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(dh).astype(x.dtype)
    att = jax.nn.softmax(att, axis=-1)
    out = jnp.einsum("nhqk,nkhd->nqhd", att, v)
    out = nn.DenseGeneral(c, axis=(-2, -1), name="proj")(out)
    return out.reshape(n, h, w, c)


class GlobalBlock(Block):
  """Global feature-aware block: x + E-MHSA(BN(x)), then x + MLP(BN(x))."""
  sr_ratio: int

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dp = DropPath(self.drop_path)
    y = EMHSA(self.head_dim, self.sr_ratio, name="e_mhsa")(
        batch_norm(train, "attn_norm")(x), train=train)
    x = x + dp(y, train=train)
    y = Mlp(self.mlp_ratio, name="mlp")(batch_norm(train, "mlp_norm")(x))
    return x + dp(y, train=train)


class FrameEncoder(nn.Module):
  """Local-global feature-aware transformer: [N, H, W, C] -> [N, h, w, D]."""
  patch: int
  widths: Sequence[int]
  depths: Sequence[int]
  global_blocks: Sequence[int]
  sr_ratios: Sequence[int]
  head_dim: int
  mlp_ratio: float
  drop_path: float
  appearance: bool

  @nn.compact
  def __call__(self, motion: Array, frames: Array, *, train: bool) -> Array:
    p = self.patch

    def embed(z, name):
      z = einops.rearrange(z, "n (h p) (w q) c -> n h w (p q c)", p=p, q=p)
      z = nn.Dense(self.widths[0], name=f"{name}_embed")(z)
      return nn.LayerNorm(name=f"{name}_norm")(z)

    # Separate normalisation keeps the ~1% micro-motion from being drowned.
    x = embed(motion, "motion")
    if self.appearance:
      x = x + embed(frames, "appearance")
    n_blocks = sum(self.depths) + sum(self.global_blocks)
    rates = [self.drop_path * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
    b = 0
    for s, width in enumerate(self.widths):
      if s > 0:  # NextViT's avg-pool + 1x1 conv + BN, as a 2x2 patch merge
        x = nn.Dense(width, use_bias=False, name=f"merge{s}")(merge2x2(x))
        x = batch_norm(train, f"merge{s}_norm")(x)
      elif x.shape[-1] != width:
        x = nn.Dense(width, name="stem_proj")(x)
      for i in range(self.depths[s]):
        x = LocalBlock(self.head_dim, self.mlp_ratio, rates[b],
                       name=f"stage{s}_local{i}")(x, train=train)
        b += 1
      for i in range(self.global_blocks[s]):
        x = GlobalBlock(self.head_dim, self.mlp_ratio, rates[b],
                        sr_ratio=self.sr_ratios[s],
                        name=f"stage{s}_global{i}")(x, train=train)
        b += 1
    return batch_norm(train, "norm")(x)
