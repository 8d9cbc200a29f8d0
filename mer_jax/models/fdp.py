"""FDP as the PAPER describes it: fine-grained dynamic perception for MER.

"Micro-Expression Recognition via Fine-Grained Dynamic Perception" (Shao et
al., ACM TOMM 2025). The official code departs from the paper in several
places (no global aggregators, no rank scorer, a reshape where time was
meant; see the team's FDP code notes (FDP_SPEC.md), section 6); its faithful port is
`fdp_official`. This module builds what the paper's abstract describes:

  frames [B, T, H, W, C]
  -> motion input: each frame minus the onset (first) frame        (choice 1)
  -> local-global feature-aware transformer, the same weights for every
     frame (frames folded into the batch):                          (choice 2)
       patch embedding (reshape + Dense, patch p) + LayerNorm   [B*T, H/p, W/p, D0]
       per stage s: patch merging 2x2 (s > 0), `depths[s]` local blocks,
       `global_blocks[s]` global blocks                         [B*T, h, w, D]
  -> rank scorer: per frame, mean over space -> MLP -> scalar  rank_scores [B, T]
  -> rank features: 1x1 projection of each frame's map           [B, T, h, w, R]
  -> temporal pooling over the REAL time axis in chronological order:
     approximate rank pooling coefficients alpha_t (Bilen et al., the
     dynamic image's own) times T * softmax(rank_scores / tau)      (choice 3)
     = dynamic representation                                    [B, h, w, R]
  -> MER head: conv3x3 + BN + ReLU, average-pool to a
     head_pool x head_pool grid, flatten, Dense + ReLU, dropout, Dense
                                                               logits [B, K]
  -> dynamic-image encoder-decoder on the same representation:
     conv encoder (+ one 2x2 merge) then x2 pixel-shuffle upsampling blocks
     to H x W, 1 channel, sigmoid (choice 5)                        dynamic_image [B, H, W]

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

Choices made where the paper (abstract only, see the spec) is silent or where
we depart on purpose:
1. Motion input (departure). The network sees `frames - frames[:, :1]` with
   its own LayerNorm after the patch embedding, not the raw frames. Why: the
   baseline3d lesson; micro-motion is ~1% of the pixel range and is drowned by
   appearance otherwise. `appearance=True` adds a separately normalised
   stream of the raw frames (summed after embedding).
2. Frames are folded into the batch ([B*T, ...]), so BatchNorm statistics
   are shared by all frames of a step (the official code calls the encoder
   per frame, with per-frame statistics; spec 2.2/6.10).
3. Order-aware temporal pooling (`pooling="rank_pool"`, default): dynamic
   representation `d = sum_t alpha_t * T * softmax_t(s_t / rank_temperature)
   * r_t` over the T real frames, where `s_t` is the rank score and `r_t` the
   rank feature map of frame t, and `alpha_t` are the approximate rank pooling
   coefficients of Bilen et al. over the chronological position t
   (`dynamic_image.rank_pool_weights`, the coefficients that make the
   dynamic-image target; scaled so that the positive and the negative ones
   each sum to 1). As a dynamic image, `d` depends on the order of the
   frames (reversed or shuffled frames give another `d`; tests check it);
   the rank scores re-weight the frames. The spatial layout is kept (where
   the face moves is the class). `pooling="softmax"` is the earlier pooling,
   kept for the ablation: `d = sum_t softmax_t(s_t / tau) * r_t`, the same
   for any order of the frames. The official code instead convolves a raw
   reshape whose "time" axis is feature chunks (spec 6.4).
4. Ranking objective (`aux_losses`, `rank_weight`): the abstract says the
   rank scorer ranks frame features "in chronological order", so a pairwise
   hinge `relu(margin - (s_{t+1} - s_t))` on consecutive frames. Default, set
   from the paper and the official code and not chosen on any score: no key
   frames (`rank_use_apex=False`; the paper claims FDP needs none and the
   official code reads no apex) and every consecutive pair rises
   (`rank_window="clip"`, Bilen-style rank pooling over the whole clip).
   `rank_weight` 0.1 and `rank_margin` 0.1 are a priori values: the paper
   (abstract only) gives none and the official code has no ranking loss. An
   earlier ablation looked at the ranking options on two test folds (see git
   history); nothing here is chosen from it. Options, reported as such:
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
   Per clip the hinge is averaged over its ranked pairs, then over the clips
   with `mask` 1 (`ranking_loss`, a pure function of scores, apex_index and
   mask). The official code has no ranking loss.
5. Dynamic-image module: a small conv encoder-decoder on the shared dynamic
   representation (one 2x2 merge, then pixel-shuffle x2 upsampling blocks;
   the last x2 is a pixel-shuffled Dense straight to the 1-channel logits; a
   bilinear resize + conv only when H is not a power-of-two multiple of the
   map), instead of the official full SegNet with its own 13-conv
   encoder (spec 6.5). Target: `batch["dynamic_image"]` from
   `mer_jax.data.dynamic_image` (set `config.input.targets =
   ("dynamic_image",)`); MSE masked by `batch["mask"]`, weight `di_weight`
   (the official 100 overwhelms a small model's CE; configs choose).
6. Patch embedding and merging are reshape + Dense (a strided Conv3D/Conv2D
   backward is very slow on XLA:CPU); an odd map is edge-padded before a 2x2
   merge.
7. MHCA's grouped 3x3 conv keeps a grouped kernel [3, 3, C/heads, C] but runs
   it as a dense conv with the block-diagonal expansion (the same function):
   XLA:CPU's `feature_group_count` backward made a training step ~3x slower
   (measured). heads = C // head_dim (1 when head_dim does not divide C).
8. Sizes: any T and H, W divisible by `patch`; later stages halve the map
   (ceil). Dense/LayerNorm/BatchNorm defaults are Flax's (no attempt at the
   official trunc-normal init, which has no bearing on this architecture).

Size (parameters, 5 classes, counted with jax.eval_shape; the official count
is from FDP_SPEC section 0):
  official FDP (fdp_official)             85,304,206: frame encoder 54,952,448
                                          (incl. its 768->4096 projection),
                                          MER head 905,293, SegNet 29,446,465
  configs/fdp_synthetic.py:official_width 26,528,842: frame encoder 26,064,288
                                          (the official widths 96/192/384/768
                                          and depths 3/4/10/3, local blocks
                                          only, as the official code builds),
                                          dynamic-image decoder 102,820, rank
                                          scorer + head 361,734
  configs/fdp_{samm,casme2,...}.py         3,787,626: frame encoder 3,368,000
                                          (widths 64/128/256, depths 2/2/4 +
                                          one global block per stage)
  configs/fdp_synthetic.py                   192,602: frame encoder 136,416
At the official widths the encoder has half the official parameters: the
paper's MHCA (grouped 3x3, `head_dim` channels per group, + 1x1) replaces the
official dense 3x3 conv (9 C^2 weights per block), there is no 768 -> 4096
projection, and the decoder is not a 13-conv SegNet.

Optimiser, schedule and losses: every departure from the official train.py
(Adam lr 1e-4 + coupled L2 1e-3 on all parameters, no clipping, constant lr,
batch 36, 501 steps, CE + 100 * MSE(dynamic image), no augmentation, the epoch
with the best TEST accuracy kept), for the `fdp` configs:
  * optimiser: AdamW with decoupled weight decay (1e-4 synthetic, 1e-3 real
    corpora) and gradient clipping at global norm 1.0;
  * schedule: linear warm-up (20 / 50 steps) then cosine decay to 0, peak lr
    2e-3 (synthetic) / 1e-3 (real); batch 16 x 300 steps (synthetic) /
    32 x 500 steps (real corpora);
  * losses: CE + 1.0 * MSE(dynamic image) (`di_weight`; the official 100
    overwhelms a small model's CE) + 0.1 * the chronological ranking hinge
    (`rank_weight`; the official code has none); the dynamic-image target is
    the official one, computed from the augmented frames;
  * augmentation (flip, +-5 deg rotation, 0.95-1.05 scale, 4 % shift,
    brightness / contrast), head dropout 0.2-0.3, stochastic depth 0 / 0.1
    in every step (official: 0.1, then off from epoch 2 with BN frozen);
  * input: (x / 255 - 0.5) / 0.5 for train and test alike (official: a
    per-split scalar re-normalisation, the test subject with its own
    statistics), the motion input of choice 1;
  * selection: the model after the last step (never a test-label choice).
`fdp_official` (configs/fdp_official_*.py) keeps the official optimiser,
schedule and loss; see configs/common.py:fdp_official.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Importing registers the "dynamic_image" input target this model trains on.
from mer_jax.data import dynamic_image as _dynamic_image  # noqa: F401

Array = jnp.ndarray


def _bn(train: bool, name: str | None = None) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, name=name)


def _merge2x2(x: Array) -> Array:
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
    x = nn.relu(_bn(train, "norm")(x))
    return nn.Dense(c, use_bias=False, name="projection")(x)


class LocalBlock(nn.Module):
  """Local feature-aware block: x + MHCA(x), then x + MLP(BN(x))."""
  head_dim: int
  mlp_ratio: float
  drop_path: float

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dp = DropPath(self.drop_path)
    x = x + dp(MHCA(self.head_dim, name="mhca")(x, train=train), train=train)
    y = Mlp(self.mlp_ratio, name="mlp")(_bn(train, "norm")(x))
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
      kv = _bn(train, "sr_norm")(kv)
    kv = kv.reshape(n, -1, c)
    k = nn.DenseGeneral((heads, dh), name="k")(kv)
    v = nn.DenseGeneral((heads, dh), name="v")(kv)
    att = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(dh).astype(x.dtype)
    att = jax.nn.softmax(att, axis=-1)
    out = jnp.einsum("nhqk,nkhd->nqhd", att, v)
    out = nn.DenseGeneral(c, axis=(-2, -1), name="proj")(out)
    return out.reshape(n, h, w, c)


class GlobalBlock(nn.Module):
  """Global feature-aware block: x + E-MHSA(BN(x)), then x + MLP(BN(x))."""
  head_dim: int
  sr_ratio: int
  mlp_ratio: float
  drop_path: float

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dp = DropPath(self.drop_path)
    y = EMHSA(self.head_dim, self.sr_ratio, name="e_mhsa")(
        _bn(train, "attn_norm")(x), train=train)
    x = x + dp(y, train=train)
    y = Mlp(self.mlp_ratio, name="mlp")(_bn(train, "mlp_norm")(x))
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
        x = nn.Dense(width, use_bias=False, name=f"merge{s}")(_merge2x2(x))
        x = _bn(train, f"merge{s}_norm")(x)
      elif x.shape[-1] != width:
        x = nn.Dense(width, name="stem_proj")(x)
      for i in range(self.depths[s]):
        x = LocalBlock(self.head_dim, self.mlp_ratio, rates[b],
                       name=f"stage{s}_local{i}")(x, train=train)
        b += 1
      for i in range(self.global_blocks[s]):
        x = GlobalBlock(self.head_dim, self.sr_ratios[s], self.mlp_ratio,
                        rates[b], name=f"stage{s}_global{i}")(x, train=train)
        b += 1
    return _bn(train, "norm")(x)


class DynamicImageDecoder(nn.Module):
  """Encoder-decoder: dynamic representation [B, h, w, R] -> logits [B, H, W]."""
  widths: Sequence[int]
  out_size: tuple[int, int]

  @nn.compact
  def __call__(self, d: Array, *, train: bool) -> Array:
    def conv_bn_relu(z, width, name):
      z = nn.Conv(width, (3, 3), padding="SAME", use_bias=False, name=name)(z)
      return nn.relu(_bn(train, f"{name}_norm")(z))

    x = conv_bn_relu(d, self.widths[0], "enc0")
    merged = x.shape[1] >= 4 and x.shape[2] >= 4
    if merged:  # encoder: one 2x2 merge for context, decoded back below
      x = nn.Dense(self.widths[0], use_bias=False, name="enc_merge")(_merge2x2(x))
      x = conv_bn_relu(x, self.widths[0], "enc1")
    h_out, w_out = self.out_size
    shuffle = lambda z: einops.rearrange(z, "b h w (p q c) -> b (h p) (w q) c",
                                         p=2, q=2)
    i = 0
    # Pixel shuffle x2 (a Dense to 4 * width and a depth-to-space reshape)
    # + conv, until one more x2 reaches the output size.
    while 2 * x.shape[1] < h_out or 2 * x.shape[2] < w_out:
      width = self.widths[min(i + 1, len(self.widths) - 1)]
      x = conv_bn_relu(shuffle(nn.Dense(4 * width, name=f"up{i}")(x)), width,
                       f"dec{i}")
      i += 1
    if (2 * x.shape[1], 2 * x.shape[2]) == (h_out, w_out):
      # The last x2 emits the 1-channel logits directly (no full-resolution
      # conv: it was ~20% of a training step on CPU).
      return shuffle(nn.Dense(4, name="out")(x))[..., 0]
    x = jax.image.resize(x, (x.shape[0], h_out, w_out, x.shape[-1]), "bilinear")
    return nn.Conv(1, (3, 3), padding="SAME", name="out")(x)[..., 0]


class Model(nn.Module):
  """Paper FDP; `frames` `[B, T, H, W, C]` -> (logits `[B, K]`, aux).

  aux: `rank_scores` [B, T], `rank_weights` [B, T] (the temporal pooling
  coefficients, see `temporal_pool_weights`),
  `dynamic_representation` [B, h, w, R], `dynamic_image` [B, H, W] (sigmoid),
  `dynamic_image_logits` [B, H, W].
  """
  num_classes: int
  patch: int = 4
  widths: Sequence[int] = (64, 128, 256)
  depths: Sequence[int] = (2, 2, 4)
  global_blocks: Sequence[int] = (1, 1, 1)
  sr_ratios: Sequence[int] = (4, 2, 1)
  head_dim: int = 16
  mlp_ratio: float = 3.0
  drop_path: float = 0.1
  appearance: bool = False
  rank_dim: int = 128  # channels of the rank features / dynamic representation
  rank_hidden: int = 64  # rank scorer MLP width
  rank_temperature: float = 1.0
  pooling: str = "rank_pool"  # rank_pool (order-aware) | softmax (ablation)
  head_width: int = 128  # MER head conv width and hidden Dense width
  head_pool: int = 2  # spatial grid kept for the MER head
  dropout: float = 0.2
  decoder_widths: Sequence[int] = (64, 32, 16)

  @nn.compact
  def __call__(self, frames: Array, *, train: bool) -> tuple[Array, dict[str, Any]]:
    b, t, h, w, _ = frames.shape
    n_stages = len(self.widths)
    for name in ("depths", "global_blocks", "sr_ratios"):
      if len(getattr(self, name)) != n_stages:
        raise ValueError(f"fdp: len({name})={len(getattr(self, name))} must "
                         f"equal len(widths)={n_stages}")
    if h % self.patch or w % self.patch:
      raise ValueError(f"fdp: frame size {h}x{w} is not divisible by patch "
                       f"{self.patch}")
    # Choice 1: motion relative to onset (the first sampled frame).
    motion = frames - frames[:, :1]
    fold = lambda z: einops.rearrange(z, "b t h w c -> (b t) h w c")
    feats = FrameEncoder(
        self.patch, tuple(self.widths), tuple(self.depths),
        tuple(self.global_blocks), tuple(self.sr_ratios), self.head_dim,
        self.mlp_ratio, self.drop_path, self.appearance,
        name="frame_rep")(fold(motion), fold(frames), train=train)  # [BT,h,w,D]

    # Rank scorer: one scalar per frame-level feature.
    g = feats.mean(axis=(1, 2))
    g = nn.relu(nn.Dense(self.rank_hidden, name="rank_fc1")(g))
    scores = nn.Dense(1, name="rank_fc2")(g).reshape(b, t)  # [B, T]
    # Rank features, pooled over the real time axis by the rank scores.
    r = nn.Dense(self.rank_dim, name="rank_proj")(feats)
    r = einops.rearrange(r, "(b t) h w c -> b t h w c", b=b, t=t)
    weights = temporal_pool_weights(scores, self.pooling,
                                    self.rank_temperature)  # [B, T]
    d = jnp.einsum("bt,bthwc->bhwc", weights, r)  # dynamic representation

    # MER head.
    x = nn.Conv(self.head_width, (3, 3), padding="SAME", use_bias=False,
                name="head_conv")(d)
    x = nn.relu(_bn(train, "head_norm")(x))
    k = max(x.shape[1] // self.head_pool, 1)
    x = nn.avg_pool(x, (k, k), strides=(k, k))
    x = x.reshape(b, -1)
    x = nn.relu(nn.Dense(self.head_width, name="head_fc1")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, name="head_fc2")(x)

    # Dynamic-image construction from the same representation.
    di_logits = DynamicImageDecoder(tuple(self.decoder_widths), (h, w),
                                    name="dyimg_net")(d, train=train)
    aux = {
        "rank_scores": scores,
        "rank_weights": weights,
        "dynamic_representation": d,
        "dynamic_image": jax.nn.sigmoid(di_logits),
        "dynamic_image_logits": di_logits,
    }
    return logits, aux


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
  alpha = _dynamic_image.rank_pool_weights(t)
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
  return jnp.sum(hinge * ranked, axis=1) / jnp.maximum(jnp.sum(ranked, axis=1), 1.0)


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
  return _masked_mean(per_clip, mask)


def _masked_mean(per_clip: Array, mask: Array | None) -> Array:
  if mask is None:
    return jnp.mean(per_clip)
  keep = mask > 0
  mask = mask.astype(per_clip.dtype)
  # where, not a product: a masked row's value (even inf/nan) never leaks.
  total = jnp.sum(jnp.where(keep, per_clip * mask, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1.0)


def aux_losses(aux: Mapping[str, Array], batch: Mapping[str, Array],
               di_weight: float = 1.0, rank_weight: float = 0.1,
               rank_margin: float = 0.1,
               rank_window: str = "clip",
               rank_use_apex: bool = False) -> dict[str, Array]:
  """Dynamic-image MSE and ranking loss, weighted, padding masked.

  Args:
    aux: model aux with `dynamic_image` [B, H, W] and `rank_scores` [B, T].
    batch: input dict; `dynamic_image` [B, H, W] in [0, 1] (needed when
      `di_weight > 0`), optional `mask` [B] (1 = real sample), optional
      `apex_index` [B] (sampled apex frame, -1 = unknown; see `ranking_loss`).
    di_weight: weight of the dynamic-image MSE (mean over H * W per clip).
    rank_weight: weight of the chronological ranking hinge.
    rank_margin: hinge margin between consecutive frames' scores.
    rank_window: "clip" (default: every consecutive pair rises) or
      "to_peak" (see `ranking_loss`).
    rank_use_apex: False (default, the paper's setting: no key frames) ranks
      as if every apex were unknown; True uses `batch["apex_index"]` when
      present (apex-supervised ranking, an option to report as such).

  Returns:
    {'dynamic_image_mse': scalar, 'rank': scalar}, terms with weight 0 left out.
  """
  mask = batch.get("mask")
  out = {}
  if di_weight:
    if "dynamic_image" not in batch:
      raise ValueError("fdp needs the dynamic-image target: set "
                       "config.input.targets = ('dynamic_image',) or "
                       "config.aux_loss.di_weight = 0.")
    err = jnp.mean(jnp.square(aux["dynamic_image"] - batch["dynamic_image"]),
                   axis=(1, 2))
    out["dynamic_image_mse"] = di_weight * _masked_mean(err, mask)
  if rank_weight:
    apex = batch.get("apex_index") if rank_use_apex else None
    out["rank"] = rank_weight * ranking_loss(
        aux["rank_scores"], apex, mask, margin=rank_margin, window=rank_window)
  return out


def preview(aux: Mapping[str, Array], batch: Mapping[str, Array]
            ) -> tuple[Array, Array | None]:
  """The trainer's per-clip picture: (constructed dynamic image [B, H, W] in
  [0, 1], its target `batch["dynamic_image"]` [B, H, W] or None)."""
  return aux["dynamic_image"], batch.get("dynamic_image")
