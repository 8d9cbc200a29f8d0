"""FDP, code-faithful port of the official PyTorch model (github.com/CYF-cuber/FDP).

"Micro-Expression Recognition via Fine-Grained Dynamic Perception" (Shao et al.,
TOMM 2025). This module reproduces the official `fdp.py` (snapshot 7ad36d9)
layer by layer, including its quirks; it is checked against reference vectors
made with the official code (`scripts/check_fdp_reference.py`). The paper's
architecture (rank scorer, global MHSA aggregators, ...) is a separate model,
`fdp`.

Forward pass, with shapes for the official widths (B clips, T=8 frames):

  frames [B, 8, 64, 64, 1]
  -> frame_rep: per-frame CNN encoder (stem + 20 LFA blocks + BN + avg-pool +
     Linear 768->4096), the same weights for every frame    [B, 8, 4096]
  -> RAW C-order reshape to [B, 64, 64, 8] (the official
     `reshape(-1, 1, 64, 64, 8)`)                           [B, 64, 64, 8]
  -> mer.conv3d: Conv3d(1->8, k=(3,3,8), pad (1,1,0)) == a 2-D 3x3 conv with
     the size-8 axis as input channels: the "dynamic representation"
                                                             [B, 64, 64, 8]
  -> MER head: max-pool 3x3/3 -> flatten (torch C,H,W order) -> fc1 -> ReLU
     -> fc2                                                  [B, num_classes]
  -> dyimg_net: a full SegNet (own encoder, max-unpooling decoder) -> sigmoid
                                                             [B, 64, 64]

Departures of the official code from the paper (see FDP_SPEC.md section 6),
all reproduced here on purpose:

1. No global (ViT / MHSA) aggregators: the frame encoder builds only the LFA
   conv blocks (the trailing GFA block of each stage is never reached), so it
   is a pure CNN.
2. The "multi-head convolutional attention" (MHCA) is ONE dense 3x3 conv
   (groups=1, no BN/ReLU/projection); `head_dim` is only used in an assert.
3. No explicit rank scorer, rank scores or ranking loss; the only "temporal
   pooling" is the Conv3d with a depth-8 kernel.
4. The pooled axis is not time: the raw reshape [B, 8, 4096] -> [B, 64, 64, 8]
   makes the size-8 axis run over 8 consecutive feature dims of one frame;
   frame f occupies rows 8f..8f+7 and only the 3x3 spatial kernel mixes
   adjacent frames. (`jnp.reshape` has the same C-order semantics; there is
   deliberately no transpose.)
5. The dynamic-image "decoder" is a full VGG16-style SegNet with its own
   13-conv encoder; only the 8-channel conv3d output is shared with the MER
   head.
6. The MER head is hard-wired to 5 classes in the official code (here
   `num_classes`, default 5).
7. There is no nonlinearity between proj_head, conv3d and the two heads.
8. The frame encoder is called once per frame, so every BatchNorm in it uses
   per-frame batch statistics and its running statistics get 8 sequential
   updates per training step (reproduced by `TorchBatchNorm(group_dims=1)`).
Training-protocol quirks that live in the trainer, not here: coupled L2 weight
decay in Adam (also on BN and biases), training in eval mode after epoch 1
(official train.py never switches back after `evaluate()`), per-split input
normalisation, best-epoch selection on the test subject.

Implementation notes:
* Layout is NHWC; the module names mirror the torch state_dict names, which
  `convert.py` maps both ways (`load()` / `to_state_dict()`). The torch-
  compatible layers (Conv2d, TorchBatchNorm, pools, ...) are in
  `torch_layers.py`.
* The 8 per-frame encoder calls are batched as one [T, B, ...] computation;
  BatchNorm reduces over (B, H, W) separately for every frame, which is exactly
  the 8 separate calls (DropPath masks are drawn per frame and sample, as in 8
  independent torch calls).
* Init: frame encoder conv/linear weights N(0, 0.02^2) (timm `trunc_normal_`
  with absolute bounds +-2 = +-100 sigma, i.e. effectively untruncated),
  biases 0; MER head and SegNet use the PyTorch defaults (kaiming_uniform(a=
  sqrt(5)) = U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in))); BN scale 1, bias 0,
  running mean 0, var 1.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.models import common
from mer_jax.models.fdp_official.torch_layers import (
    Conv2d, DropPath, Linear, TorchBatchNorm, avg_pool_2x2_ceil,
    max_pool_2x2_argmax, max_unpool_2x2)

Array = jax.Array

def resolve_kwargs(kwargs: dict[str, Any], platform: str) -> dict[str, Any]:
  """Resolves `matmul_dtype="auto"` and `im2col_max_pixels=-1` for `platform`.

  The fastest route measured (scripts/bench.py, README): on a CPU with
  AVX512-BF16 (or AMX) bfloat16 products with im2col on maps up to 32x32
  (1024 px); on a CPU without them float32 (bfloat16 gained nothing there)
  with im2col only on the 2x2 maps (4 px); on a GPU / TPU bfloat16 products
  and the backend's own convolutions (0).
  """
  from mer_jax import hardware  # pylint: disable=g-import-not-at-top
  kw = dict(kwargs)
  cpu = platform == "cpu"
  bf16 = not cpu or hardware.cpu_has_bf16_dots()
  if kw.get("matmul_dtype") == "auto":
    kw["matmul_dtype"] = "bfloat16" if bf16 else "float32"
  if kw.get("im2col_max_pixels") == -1:
    kw["im2col_max_pixels"] = (0 if not cpu else
                               1024 if kw.get("matmul_dtype") == "bfloat16" else 4)
  return kw


# Official full-model configuration (FDP() has no arguments).
FULL_CONFIG: dict[str, Any] = dict(
    stem_chs=(64, 32, 64),
    depths=(3, 4, 10, 3),
    widths=(96, 192, 384, 768),
    mlp_ratio=3.0,
    head_dim=8,
    path_dropout=0.1,
    feature_dim=4096,
    rep_shape=(64, 64, 8),
    rep_channels=8,
    fc1_hidden=256,
    segnet_widths=(64, 128, 256, 512),
)
FULL_NUM_PARAMS = 85_304_206

# NON-OFFICIAL reduced widths of the reference file fdp_ref_small.npz.
SMALL_CONFIG: dict[str, Any] = dict(
    FULL_CONFIG,
    stem_chs=(8, 8, 16),
    depths=(2, 2, 2, 2),
    widths=(16, 24, 32, 48),
    fc1_hidden=32,
    segnet_widths=(8, 16, 32, 64),
)


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
  """The official `_make_divisible` (rounds the LFA MLP hidden width)."""
  if min_value is None:
    min_value = divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


class ConvRoute(nn.Module, kw_only=True):
  """Base of the modules whose convs take `Model`'s product route."""
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.nowrap
  def route(self) -> dict[str, Any]:
    """The route's Conv2d / sub-module keyword arguments."""
    return dict(im2col_max_pixels=self.im2col_max_pixels,
                matmul_dtype=self.matmul_dtype)


# ---------------------------------------------------------------------------
# Frame encoder ("Local_Global_Feature_Aware_Transformer", LFA blocks only).
# ---------------------------------------------------------------------------

class ConvBNReLU(ConvRoute):
  features: int
  stride: int

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = Conv2d(self.features, 3, self.stride, 1, use_bias=False, init="timm",
               **self.route(), name="conv")(x)
    x = TorchBatchNorm(group_dims=1, name="norm")(x, train=train)
    return nn.relu(x)


class PatchEmbed(nn.Module):
  """[avg-pool 2x2 if stride 2] -> 1x1 conv (no bias) -> BN."""
  features: int
  stride: int
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    if self.stride == 2:
      x = avg_pool_2x2_ceil(x)
    x = Conv2d(self.features, 1, 1, 0, use_bias=False, init="timm",
               matmul_dtype=self.matmul_dtype, name="conv")(x)
    return TorchBatchNorm(group_dims=1, name="norm")(x, train=train)


class MHCA(ConvRoute):
  """Official "multi-head conv attention": one dense 3x3 conv, no bias."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return Conv2d(x.shape[-1], 3, 1, 1, use_bias=False, init="timm",
                  **self.route(), name="group_conv3x3")(x)


class Mlp(nn.Module):
  hidden: int
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    x = Conv2d(self.hidden, 1, 1, 0, init="timm",
               matmul_dtype=self.matmul_dtype, name="conv1")(x)
    x = nn.relu(x)  # Dropout(0) omitted: drop=0 in the official model.
    return Conv2d(c, 1, 1, 0, init="timm", matmul_dtype=self.matmul_dtype,
                  name="conv2")(x)


class LFA(ConvRoute):
  """Official LFA block (NextViT "next conv block")."""
  features: int
  stride: int
  path_dropout: float
  mlp_ratio: float = 3.0
  head_dim: int = 8

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    assert self.features % self.head_dim == 0, (self.features, self.head_dim)
    if self.stride == 2 or x.shape[-1] != self.features:
      x = PatchEmbed(self.features, self.stride, self.matmul_dtype,
                     name="patch_embed")(x, train=train)
    mhca = MHCA(**self.route(), name="mhca")
    x = x + DropPath(self.path_dropout)(mhca(x), train=train)
    out = TorchBatchNorm(group_dims=1, name="norm")(x, train=train)
    hidden = make_divisible(self.features * self.mlp_ratio, 32)
    out = Mlp(hidden, self.matmul_dtype, name="mlp")(out)
    return x + DropPath(self.path_dropout)(out, train=train)


class FrameEncoder(ConvRoute):
  """Per-frame CNN encoder, official `frame_rep`.

  Attributes mirror `Local_Global_Feature_Aware_Transformer` (strides fixed to
  the official [1, 2, 2, 2]; only LFA blocks are instantiated, as in the code).
  """
  stem_chs: Sequence[int]
  depths: Sequence[int]
  widths: Sequence[int]
  mlp_ratio: float
  head_dim: int
  path_dropout: float
  feature_dim: int
  strides: Sequence[int] = (1, 2, 2, 2)

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """[T, B, H, W, C] (T independent calls) -> [T, B, feature_dim]."""
    s0, s1, s2 = self.stem_chs
    for i, (ch, st) in enumerate(((s0, 2), (s1, 1), (s2, 1), (s2, 2))):
      x = ConvBNReLU(ch, st, **self.route(), name=f"stem_{i}")(x, train=train)
    # torch.linspace(0, p, n) in float32, then .item().
    dpr = np.linspace(0.0, self.path_dropout, sum(self.depths),
                      dtype=np.float32).astype(np.float64)
    idx = 0
    for stage, (depth, width) in enumerate(zip(self.depths, self.widths)):
      for b in range(depth):
        stride = 2 if (self.strides[stage] == 2 and b == 0) else 1
        x = LFA(width, stride, float(dpr[idx]), self.mlp_ratio, self.head_dim,
                **self.route(), name=f"features_{idx}")(x, train=train)
        idx += 1
    x = TorchBatchNorm(group_dims=1, name="norm")(x, train=train)
    x = jnp.mean(x, axis=(-3, -2))  # AdaptiveAvgPool2d(1) + flatten
    return Linear(self.feature_dim, init="timm",
                  matmul_dtype=self.matmul_dtype, name="proj_head_0")(x)


# ---------------------------------------------------------------------------
# MER head (CLS_Net) and SegNet.
# ---------------------------------------------------------------------------

class CLSNet(ConvRoute):
  """Official `mer`: Conv3d (as 2-D conv) -> MaxPool3d -> fc1 -> ReLU -> fc2."""
  num_classes: int
  hidden: int
  rep_channels: int = 8
  pool: int = 3

  @nn.compact
  def __call__(self, r: Array) -> tuple[Array, Array]:
    """[B, H, W, K] -> (conv3d out [B, H, W, rep_channels], logits)."""
    y = Conv2d(self.rep_channels, 3, 1, 1, init="torch",
               **self.route(), name="conv3d")(r)
    p = nn.max_pool(y, (self.pool, self.pool), strides=(self.pool, self.pool),
                    padding="VALID")
    self.sow("intermediates", "mer_pooled", p)
    # nn.Flatten on torch (B, C, h, w, 1): channel-major order.
    f = p.transpose(0, 3, 1, 2).reshape(p.shape[0], -1)
    dense = functools.partial(Linear, matmul_dtype=self.matmul_dtype)
    h = nn.relu(dense(self.hidden, name="fc1")(f))
    return y, dense(self.num_classes, name="fc2")(h)


class SegNet(ConvRoute):
  """Official `SegNet(8, 1)` with widths (a, b, c, d) = (64, 128, 256, 512)."""
  widths: Sequence[int]
  out_channels: int = 1

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """[B, H, W, Cin] -> logits [B, H, W, out_channels]."""
    a, b, c, d = self.widths
    conv = functools.partial(Conv2d, kernel_size=3, stride=1, padding=1,
                             init="torch", **self.route())

    def cbr(x, name, features):
      x = conv(features, name=f"conv{name}")(x)
      x = TorchBatchNorm(name=f"bn{name}")(x, train=train)
      return nn.relu(x)

    encoder = (((11, a), (12, a)), ((21, b), (22, b)),
               ((31, c), (32, c), (33, c)), ((41, d), (42, d), (43, d)),
               ((51, d), (52, d), (53, d)))
    decoder = ((("53d", d), ("52d", d), ("51d", d)),
               (("43d", d), ("42d", d), ("41d", c)),
               (("33d", c), ("32d", c), ("31d", b)),
               (("22d", b), ("21d", a)),
               (("12d", a),))
    indices = []
    for s, stage in enumerate(encoder):
      for name, feats in stage:
        x = cbr(x, name, feats)
      x, idx = max_pool_2x2_argmax(x)
      self.sow("intermediates", f"segnet_pool{s + 1}_argmax", idx)
      indices.append(idx)
    for stage, idx in zip(decoder, reversed(indices)):
      x = max_unpool_2x2(x, idx)
      for name, feats in stage:
        x = cbr(x, name, feats)
    return conv(self.out_channels, name="conv11d")(x)


class Model(nn.Module):
  """Official FDP (code-faithful). Defaults = the official full model.

  Attributes:
    num_classes: MER classes (official: 5).
    stem_chs: stem widths (official [64, 32, 64]).
    depths: LFA blocks per stage (official [3, 4, 10, 3]).
    widths: stage widths (official [96, 192, 384, 768]).
    mlp_ratio: LFA MLP ratio; hidden = make_divisible(C * ratio, 32).
    head_dim: only checked (`width % head_dim == 0`), as in the code.
    path_dropout: max stochastic-depth rate (linspace over the 20 blocks).
    num_frames: T (official 8).
    feature_dim: per-frame feature size (proj_head output, official 4096).
    rep_shape: target of the raw reshape of [B, T, feature_dim] (official
      (64, 64, 8)); the last axis is the Conv3d depth axis (kernel spans it).
    rep_channels: Conv3d output channels = SegNet input channels (official 8).
    fc1_hidden: MER head hidden width (official 256).
    segnet_widths: SegNet widths (official (64, 128, 256, 512)).
    im2col_max_pixels: 3x3 convs on maps of at most this many pixels (the
      2x2 last stage) run as im2col + matmul, 35x faster on XLA:CPU. The same
      math (equal to 1e-13 in float64, tests/test_fdp_official.py) in another
      float32 summation order; 0 = XLA's conv everywhere, which
      `reference.py` uses to compare with the reference's gradients (see
      there why the order matters). With `matmul_dtype="bfloat16"` on a
      CPU, 1024 is fastest (every map up to 32x32 goes through the bfloat16
      dots); on a GPU / TPU use 0 (their convolutions take bfloat16).
    matmul_dtype: "float32" (default; the official numerics) or "bfloat16":
      every conv and dense product rounds its operands to bfloat16 and
      accumulates in float32, in the forward and both backward products;
      parameters, BatchNorm, losses and the optimizer stay float32. This is
      the default precision of a float32 matmul on TPU and what
      `torch.autocast(dtype=torch.bfloat16)` does to convs. On an AVX512-BF16
      CPU it takes the full train step from 3.1 s to 2.1 s (scripts/bench.py).
  """
  num_classes: int = 5
  stem_chs: Sequence[int] = FULL_CONFIG["stem_chs"]
  depths: Sequence[int] = FULL_CONFIG["depths"]
  widths: Sequence[int] = FULL_CONFIG["widths"]
  mlp_ratio: float = FULL_CONFIG["mlp_ratio"]
  head_dim: int = FULL_CONFIG["head_dim"]
  path_dropout: float = FULL_CONFIG["path_dropout"]
  num_frames: int = 8
  feature_dim: int = FULL_CONFIG["feature_dim"]
  rep_shape: Sequence[int] = FULL_CONFIG["rep_shape"]
  rep_channels: int = FULL_CONFIG["rep_channels"]
  fc1_hidden: int = FULL_CONFIG["fc1_hidden"]
  segnet_widths: Sequence[int] = FULL_CONFIG["segnet_widths"]
  im2col_max_pixels: int = 4
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, frames: Array, *, train: bool) -> tuple[Array, dict]:
    """Forward pass.

    Args:
      frames: float32 [B, T, H, W, C] (official: T=8, 64x64, C=1).
      train: BatchNorm batch statistics (and running-stat updates when
        `batch_stats` is mutable) and DropPath (needs the `dropout` rng when
        path_dropout > 0).

    Returns:
      logits [B, num_classes] and aux with `dynamic_image` [B, H', W'] (after
      sigmoid), `dynamic_image_logits` [B, H', W'], `dynamic_representation`
      [B, H', W', rep_channels] (conv3d output, NHWC) and `frame_features`
      [B, T, feature_dim]; (H', W') = rep_shape[:2].
    """
    if self.matmul_dtype not in ("float32", "bfloat16"):
      raise ValueError(f"matmul_dtype must be 'float32' or 'bfloat16', got "
                       f"{self.matmul_dtype!r}")
    bsz, t = frames.shape[:2]
    if t != self.num_frames:
      raise ValueError(f"Expected T={self.num_frames} frames, got {frames.shape}")
    rep_shape = tuple(self.rep_shape)
    if t * self.feature_dim != int(np.prod(rep_shape)):
      raise ValueError(f"T * feature_dim = {t * self.feature_dim} does not fit "
                       f"rep_shape {rep_shape}")
    route = dict(im2col_max_pixels=self.im2col_max_pixels,
                 matmul_dtype=self.matmul_dtype)
    feats = FrameEncoder(
        self.stem_chs, self.depths, self.widths, self.mlp_ratio, self.head_dim,
        self.path_dropout, self.feature_dim, **route, name="frame_rep")(
            jnp.swapaxes(frames, 0, 1), train=train)
    frame_features = jnp.swapaxes(feats, 0, 1)  # [B, T, F], torch.cat order
    # The official raw reshape (B, T, F) -> (B, 1, 64, 64, 8): NOT a transpose.
    r = frame_features.reshape((bsz,) + rep_shape)
    y, logits = CLSNet(self.num_classes, self.fc1_hidden, self.rep_channels,
                       **route, name="mer")(r)
    di_logits = SegNet(self.segnet_widths, 1, **route, name="dyimg_net")(
        y, train=train)[..., 0]
    aux = {
        "dynamic_image": jax.nn.sigmoid(di_logits),
        "dynamic_image_logits": di_logits,
        "dynamic_representation": y,
        "frame_features": frame_features,
    }
    return logits, aux


def aux_losses(aux: Mapping[str, Array], batch: Mapping[str, Array],
               dy_weight: float = 100.0) -> dict[str, Array]:
  """Official DI loss: `dy_weight * MSE(sigmoid DI, target)`, padding masked.

  Args:
    aux: model aux with `dynamic_image` [B, H, W].
    batch: `dynamic_image` [B, H, W] target in [0, 1]; optional `mask` [B]
      (1 = real sample).
    dy_weight: official --dy_weight (100).

  Returns:
    {'dynamic_image_mse': scalar}; with an all-ones mask this is exactly
    `dy_weight * mean((pred - target) ** 2)` over B * H * W.
  """
  err = jnp.mean(jnp.square(aux["dynamic_image"] - batch["dynamic_image"]),
                 axis=(1, 2))
  return {"dynamic_image_mse":
          dy_weight * common.masked_mean(err, batch.get("mask"))}


def preview(aux: Mapping[str, Array], batch: Mapping[str, Array]
            ) -> tuple[Array, Array | None]:
  """The trainer's per-clip picture: (constructed dynamic image [B, H, W] in
  [0, 1], its target `batch["dynamic_image"]` [B, H, W] or None)."""
  return aux["dynamic_image"], batch.get("dynamic_image")
