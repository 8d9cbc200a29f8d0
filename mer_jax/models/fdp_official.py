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
* Layout is NHWC; weights convert from torch with `load()` / `to_state_dict()`.
  Module names mirror the torch names with `.N` -> `_N` (`stem.0` -> `stem_0`,
  `features.3` -> `features_3`, `proj_head.0` -> `proj_head_0`); BN weight /
  bias / running_mean / running_var -> `scale` / `bias` / batch_stats `mean` /
  `var`. `mer/conv3d/kernel` is the (3, 3, 8, 8) HWIO kernel of the equivalent
  2-D conv (torch weight (8, 1, 3, 3, 8) -> `w[:, 0].transpose(1, 2, 3, 0)`).
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
import re
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Official full-model configuration (FDP() has no arguments).
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


# ---------------------------------------------------------------------------
# Initialisers.
# ---------------------------------------------------------------------------

# torch kaiming_uniform_(a=sqrt(5)): bound = sqrt(6 / ((1 + 5) * fan_in)).
torch_kernel_init = nn.initializers.variance_scaling(
    1.0 / 3.0, "fan_in", "uniform")
# timm trunc_normal_(std=.02) with absolute bounds (-2, 2), i.e. +-100 sigma.
timm_kernel_init = nn.initializers.truncated_normal(
    stddev=0.02, lower=-100.0, upper=100.0)


def torch_bias_init(fan_in: int):
  """PyTorch default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
  """Official `_make_divisible` (rounds the MLP hidden width)."""
  if min_value is None:
    min_value = divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


# ---------------------------------------------------------------------------
# Layers.
# ---------------------------------------------------------------------------

def _im2col(x: Array, k: int, pad: int, stride: int = 1) -> Array:
  """Patches: [..., H, W, C] -> [..., H', W', k*k*C] (HWIO order of the kernel).

  k = 1, pad = 0, stride = 1 returns `x` itself (a 1x1 conv or a Linear).
  """
  if k == 1 and pad == 0 and stride == 1:
    return x
  h, w = x.shape[-3:-1]
  widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
  xp = jnp.pad(x, widths)
  ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
  return jnp.concatenate(
      [xp[..., i:i + stride * (ho - 1) + 1:stride,
          j:j + stride * (wo - 1) + 1:stride, :]
       for i in range(k) for j in range(k)], axis=-1)


def _dot_f32(a: Array, b: Array, contract: tuple[Sequence[int], Sequence[int]]
             ) -> Array:
  return jax.lax.dot_general(a, b, (contract, ((), ())),
                             preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def mixed_conv(x: Array, kernel: Array, stride: int, pad: int,
               dtype: str) -> Array:
  """Conv (or dense product) with `dtype` operands and float32 results.

  x [N, H, W, Cin] (any leading dims when the kernel is 1x1 with pad 0),
  kernel [k, k, Cin, Cout] -> float32 [N, H', W', Cout]. The three products
  of the step (forward, input and kernel gradients) all round their operands
  to `dtype` and accumulate in float32, which is what a TPU does by default
  for float32 matmuls and what `torch.autocast` does for convs. Computed as
  im2col + dot because XLA:CPU runs bfloat16 dots ~1.8x faster than float32
  ones (its convolutions upcast bfloat16 to float32, so they gain nothing);
  the custom VJP keeps the backward products in `dtype` too (plain autodiff
  would give float32 x bfloat16 products) and reuses the forward's patches.
  """
  return _mixed_conv_fwd(x, kernel, stride, pad, dtype)[0]


def _mixed_conv_fwd(x, kernel, stride, pad, dtype):
  k, cout = kernel.shape[0], kernel.shape[-1]
  cols = _im2col(x.astype(dtype), k, pad, stride)
  w = kernel.astype(dtype)
  y = _dot_f32(cols, w.reshape(-1, cout), ((cols.ndim - 1,), (0,)))
  # x's shape rides along as a zero-size array: residuals must be arrays.
  return y, (cols, w, jnp.zeros(x.shape[:-1] + (0,), x.dtype))


def _mixed_conv_bwd(stride, pad, dtype, res, g):
  cols, w, x_stub = res
  k, cin, cout = w.shape[0], w.shape[2], w.shape[3]
  g = g.astype(dtype)
  lead = tuple(range(g.ndim - 1))
  dw = _dot_f32(cols, g, (lead, lead)).reshape(w.shape)
  dcols = _dot_f32(g, w.reshape(-1, cout), ((g.ndim - 1,), (1,)))
  x_shape = x_stub.shape[:-1] + (cin,)
  # The transpose of im2col (pad + strided adds), in float32.
  _, im2col_t = jax.vjp(lambda t: _im2col(t, k, pad, stride),
                        jnp.zeros(x_shape, jnp.float32))
  return im2col_t(dcols)[0], dw


mixed_conv.defvjp(_mixed_conv_fwd, _mixed_conv_bwd)


class Conv2d(nn.Module):
  """torch.nn.Conv2d on NHWC inputs with any number of leading batch dims.

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    stride: stride.
    padding: symmetric zero padding (torch `padding=`).
    use_bias: add a bias.
    init: "torch" (PyTorch default init) or "timm" (N(0, .02^2), zero bias).
    im2col_max_pixels: run as im2col + matmul when the input map has at most
      this many pixels (see `Model`).
    matmul_dtype: operand dtype of the product ("float32" or "bfloat16";
      float32 accumulation and output either way, see `mixed_conv`).
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  use_bias: bool = True
  init: str = "torch"
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[..., H, W, Cin] -> [..., H', W', features]."""
    cin = x.shape[-1]
    k = self.kernel_size
    fan_in = cin * k * k
    kinit = torch_kernel_init if self.init == "torch" else timm_kernel_init
    kernel = self.param("kernel", kinit, (k, k, cin, self.features))
    pointwise = k == 1 and self.stride == 1 and self.padding == 0
    small = x.shape[-3] * x.shape[-2] <= self.im2col_max_pixels
    batch_shape = x.shape[:-3]
    if self.matmul_dtype != "float32" and (pointwise or small):
      y = mixed_conv(x.reshape((-1,) + x.shape[-3:]), kernel, self.stride,
                     self.padding, self.matmul_dtype)
      y = y.reshape(batch_shape + y.shape[1:])
    elif pointwise:
      # 1x1 conv == matmul over channels; a dot is cheaper than a conv on CPU.
      y = jnp.einsum("...c,cd->...d", x, kernel[0, 0])
    elif self.stride == 1 and small:
      # Tiny maps (the 2x2 last stage): XLA:CPU runs a 3x3 768->768 conv on
      # 2x2 inputs ~35x slower than the same im2col matmul (1.4 s vs 42 ms
      # forward + backward at batch 8 x 8 frames). Same math, other float32
      # summation order.
      y = _im2col(x, k, self.padding) @ kernel.reshape(k * k * cin, -1)
    else:
      x = x.reshape((-1,) + x.shape[-3:])
      out_dtype = None
      if self.matmul_dtype != "float32":
        # The accelerator path: cuDNN / TPU convs take bfloat16 operands
        # natively (XLA:CPU upcasts them, hence `im2col_max_pixels`).
        x, kernel = x.astype(self.matmul_dtype), kernel.astype(
            self.matmul_dtype)
        out_dtype = jnp.float32
      y = jax.lax.conv_general_dilated(
          x, kernel, window_strides=(self.stride, self.stride),
          padding=((self.padding, self.padding),) * 2,
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
          preferred_element_type=out_dtype)
      y = y.reshape(batch_shape + y.shape[1:])
    if self.use_bias:
      binit = torch_bias_init(fan_in) if self.init == "torch" else (
          nn.initializers.zeros)
      y = y + self.param("bias", binit, (self.features,))
    return y


class Linear(nn.Module):
  """torch.nn.Linear (kernel stored [in, out]); `matmul_dtype` as Conv2d."""
  features: int
  init: str = "torch"
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[..., in] -> [..., features]."""
    fan_in = x.shape[-1]
    if self.init == "torch":
      kinit, binit = torch_kernel_init, torch_bias_init(fan_in)
    else:
      kinit, binit = timm_kernel_init, nn.initializers.zeros
    kernel = self.param("kernel", kinit, (fan_in, self.features))
    bias = self.param("bias", binit, (self.features,))
    if self.matmul_dtype != "float32":
      return mixed_conv(x, kernel[None, None], 1, 0, self.matmul_dtype) + bias
    return jnp.dot(x, kernel) + bias


class TorchBatchNorm(nn.Module):
  """BatchNorm with PyTorch (`nn.BatchNorm2d`) train/eval semantics.

  Train mode normalises with the batch mean and BIASED variance, and updates
  the running statistics with the UNBIASED variance:
  `r <- (1 - momentum) * r + momentum * var * n / (n - 1)` (flax's BatchNorm
  uses the biased one). Running stats live in the `batch_stats` collection as
  `mean` / `var`.

  Attributes:
    momentum: torch momentum (weight of the new statistic).
    epsilon: added to the variance.
    group_dims: number of leading axes that index independent torch calls
      (e.g. 1 for [T, B, H, W, C] = T separate calls on [B, H, W, C]). Each
      group gets its own batch statistics, and the running statistics are
      updated once per group, in order.
  """
  momentum: float = 0.1
  epsilon: float = 1e-5
  group_dims: int = 0

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """[*groups, N, ..., C] -> same shape."""
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    if not train:
      mean, var = ra_mean.value, ra_var.value
    else:
      axes = tuple(range(self.group_dims, x.ndim - 1))
      mean = jnp.mean(x, axes, keepdims=True)
      # Two-pass variance (as torch): better than E[x^2] - E[x]^2.
      var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
      if not self.is_initializing():
        n = int(np.prod([x.shape[a] for a in axes]))
        g_mean = jax.lax.stop_gradient(mean).reshape(-1, c)
        g_var = jax.lax.stop_gradient(var).reshape(-1, c) * (n / max(n - 1, 1))
        m, v = ra_mean.value, ra_var.value
        for g in range(g_mean.shape[0]):  # one torch call per group, in order
          m = (1.0 - self.momentum) * m + self.momentum * g_mean[g]
          v = (1.0 - self.momentum) * v + self.momentum * g_var[g]
        ra_mean.value, ra_var.value = m, v
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class DropPath(nn.Module):
  """timm 0.4.9 per-sample stochastic depth (`x / keep * bernoulli(keep)`).

  The mask has one entry per leading batch element (all axes but H, W, C).
  """
  rate: float

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(
        self.make_rng("dropout"), keep, x.shape[:-3] + (1, 1, 1))
    return x / keep * mask.astype(x.dtype)


def _avg_pool_2x2_ceil(x: Array) -> Array:
  """AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False); [..., H, W, C]."""
  h, w, c = x.shape[-3:]
  if h % 2 == 0 and w % 2 == 0:
    return x.reshape(x.shape[:-3] + (h // 2, 2, w // 2, 2, c)).mean((-4, -2))
  # Odd sizes: the partial border windows average only their valid entries.
  lead = x.shape[:-3]
  y = nn.avg_pool(x.reshape((-1, h, w, c)), (2, 2), strides=(2, 2),
                  padding=((0, h % 2), (0, w % 2)), count_include_pad=False)
  return y.reshape(lead + y.shape[1:])


def _max_pool_2x2_argmax(x: Array) -> tuple[Array, Array]:
  """F.max_pool2d(2, 2, return_indices=True) on [N, H, W, C].

  Returns the pooled values [N, H/2, W/2, C] and the in-window argmax
  [N, H/2, W/2, C] in 0..3 (row-major dy * 2 + dx, FIRST maximum as torch CPU).
  Gradients flow to the argmax element only (torch's indexed backward), unlike
  jnp.max which splits them between ties (all-zero windows after ReLU are
  common here).
  """
  n, h, w, c = x.shape
  win = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
  win = win.reshape(n, h // 2, w // 2, c, 4)
  idx = jnp.argmax(jax.lax.stop_gradient(win), axis=-1)
  onehot = jax.nn.one_hot(idx, 4, dtype=x.dtype)
  return jnp.sum(win * onehot, axis=-1), idx


def _max_unpool_2x2(v: Array, idx: Array) -> Array:
  """F.max_unpool2d(v, indices, 2, 2): [N, h, w, C] -> [N, 2h, 2w, C]."""
  n, h, w, c = v.shape
  out = v[..., None] * jax.nn.one_hot(idx, 4, dtype=v.dtype)  # [n,h,w,c,4]
  out = out.reshape(n, h, w, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
  return out.reshape(n, 2 * h, 2 * w, c)


def pool_indices_to_torch(idx: Array) -> Array:
  """In-window argmax [N, h, w, C] -> torch flat indices [N, C, h, w] (int64)."""
  idx = np.asarray(idx).astype(np.int64)
  _, h, w, _ = idx.shape
  rows = 2 * np.arange(h)[None, :, None, None] + idx // 2
  cols = 2 * np.arange(w)[None, None, :, None] + idx % 2
  return (rows * (2 * w) + cols).transpose(0, 3, 1, 2)


# ---------------------------------------------------------------------------
# Frame encoder ("Local_Global_Feature_Aware_Transformer", LFA blocks only).
# ---------------------------------------------------------------------------

class ConvBNReLU(nn.Module):
  features: int
  stride: int
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = Conv2d(self.features, 3, self.stride, 1, use_bias=False, init="timm",
               im2col_max_pixels=self.im2col_max_pixels,
               matmul_dtype=self.matmul_dtype, name="conv")(x)
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
      x = _avg_pool_2x2_ceil(x)
    x = Conv2d(self.features, 1, 1, 0, use_bias=False, init="timm",
               matmul_dtype=self.matmul_dtype, name="conv")(x)
    return TorchBatchNorm(group_dims=1, name="norm")(x, train=train)


class MHCA(nn.Module):
  """Official "multi-head conv attention": one dense 3x3 conv, no bias."""
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return Conv2d(x.shape[-1], 3, 1, 1, use_bias=False, init="timm",
                  im2col_max_pixels=self.im2col_max_pixels,
                  matmul_dtype=self.matmul_dtype, name="group_conv3x3")(x)


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


class LFA(nn.Module):
  """Official LFA block (NextViT "next conv block")."""
  features: int
  stride: int
  path_dropout: float
  mlp_ratio: float = 3.0
  head_dim: int = 8
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    assert self.features % self.head_dim == 0, (self.features, self.head_dim)
    if self.stride == 2 or x.shape[-1] != self.features:
      x = PatchEmbed(self.features, self.stride, self.matmul_dtype,
                     name="patch_embed")(x, train=train)
    mhca = MHCA(self.im2col_max_pixels, self.matmul_dtype, name="mhca")
    x = x + DropPath(self.path_dropout)(mhca(x), train=train)
    out = TorchBatchNorm(group_dims=1, name="norm")(x, train=train)
    hidden = _make_divisible(self.features * self.mlp_ratio, 32)
    out = Mlp(hidden, self.matmul_dtype, name="mlp")(out)
    return x + DropPath(self.path_dropout)(out, train=train)


class FrameEncoder(nn.Module):
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
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """[T, B, H, W, C] (T independent calls) -> [T, B, feature_dim]."""
    s0, s1, s2 = self.stem_chs
    for i, (ch, st) in enumerate(((s0, 2), (s1, 1), (s2, 1), (s2, 2))):
      x = ConvBNReLU(ch, st, self.im2col_max_pixels, self.matmul_dtype,
                     name=f"stem_{i}")(x, train=train)
    # torch.linspace(0, p, n) in float32, then .item().
    dpr = np.linspace(0.0, self.path_dropout, sum(self.depths),
                      dtype=np.float32).astype(np.float64)
    idx = 0
    for stage, (depth, width) in enumerate(zip(self.depths, self.widths)):
      for b in range(depth):
        stride = 2 if (self.strides[stage] == 2 and b == 0) else 1
        x = LFA(width, stride, float(dpr[idx]), self.mlp_ratio, self.head_dim,
                self.im2col_max_pixels, self.matmul_dtype,
                name=f"features_{idx}")(x, train=train)
        idx += 1
    x = TorchBatchNorm(group_dims=1, name="norm")(x, train=train)
    x = jnp.mean(x, axis=(-3, -2))  # AdaptiveAvgPool2d(1) + flatten
    return Linear(self.feature_dim, init="timm",
                  matmul_dtype=self.matmul_dtype, name="proj_head_0")(x)


# ---------------------------------------------------------------------------
# MER head (CLS_Net) and SegNet.
# ---------------------------------------------------------------------------

class CLSNet(nn.Module):
  """Official `mer`: Conv3d (as 2-D conv) -> MaxPool3d -> fc1 -> ReLU -> fc2."""
  num_classes: int
  hidden: int
  rep_channels: int = 8
  pool: int = 3
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, r: Array) -> tuple[Array, Array]:
    """[B, H, W, K] -> (conv3d out [B, H, W, rep_channels], logits)."""
    y = Conv2d(self.rep_channels, 3, 1, 1, init="torch",
               im2col_max_pixels=self.im2col_max_pixels,
               matmul_dtype=self.matmul_dtype, name="conv3d")(r)
    p = nn.max_pool(y, (self.pool, self.pool), strides=(self.pool, self.pool),
                    padding="VALID")
    self.sow("intermediates", "mer_pooled", p)
    # nn.Flatten on torch (B, C, h, w, 1): channel-major order.
    f = p.transpose(0, 3, 1, 2).reshape(p.shape[0], -1)
    dense = functools.partial(Linear, matmul_dtype=self.matmul_dtype)
    h = nn.relu(dense(self.hidden, name="fc1")(f))
    return y, dense(self.num_classes, name="fc2")(h)


class SegNet(nn.Module):
  """Official `SegNet(8, 1)` with widths (a, b, c, d) = (64, 128, 256, 512)."""
  widths: Sequence[int]
  out_channels: int = 1
  im2col_max_pixels: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """[B, H, W, Cin] -> logits [B, H, W, out_channels]."""
    a, b, c, d = self.widths
    conv = functools.partial(Conv2d, kernel_size=3, stride=1, padding=1,
                             init="torch",
                             im2col_max_pixels=self.im2col_max_pixels,
                             matmul_dtype=self.matmul_dtype)

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
      x, idx = _max_pool_2x2_argmax(x)
      self.sow("intermediates", f"segnet_pool{s + 1}_argmax", idx)
      indices.append(idx)
    for stage, idx in zip(decoder, reversed(indices)):
      x = _max_unpool_2x2(x, idx)
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
    mlp_ratio: LFA MLP ratio; hidden = _make_divisible(C * ratio, 32).
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
      `fdp_reference` uses to compare with the reference's gradients (see
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
    feats = FrameEncoder(
        self.stem_chs, self.depths, self.widths, self.mlp_ratio, self.head_dim,
        self.path_dropout, self.feature_dim,
        im2col_max_pixels=self.im2col_max_pixels,
        matmul_dtype=self.matmul_dtype, name="frame_rep")(
            jnp.swapaxes(frames, 0, 1), train=train)
    frame_features = jnp.swapaxes(feats, 0, 1)  # [B, T, F], torch.cat order
    # The official raw reshape (B, T, F) -> (B, 1, 64, 64, 8): NOT a transpose.
    r = frame_features.reshape((bsz,) + rep_shape)
    y, logits = CLSNet(self.num_classes, self.fc1_hidden, self.rep_channels,
                       im2col_max_pixels=self.im2col_max_pixels,
                       matmul_dtype=self.matmul_dtype, name="mer")(r)
    di_logits = SegNet(self.segnet_widths, 1, self.im2col_max_pixels,
                       self.matmul_dtype, name="dyimg_net")(
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
  pred = aux["dynamic_image"]
  err = jnp.mean(jnp.square(pred - batch["dynamic_image"]), axis=(1, 2))
  mask = batch.get("mask")
  if mask is None:
    mse = jnp.mean(err)
  else:
    mask = mask.astype(err.dtype)
    mse = jnp.sum(err * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return {"dynamic_image_mse": dy_weight * mse}


# ---------------------------------------------------------------------------
# torch state_dict <-> flax variables.
# ---------------------------------------------------------------------------

_BN_LEAVES = {"running_mean": "mean", "running_var": "var"}


def _torch_module_path(name: str) -> tuple[list[str], str]:
  """'frame_rep.stem.0.conv.weight' -> (['frame_rep', 'stem_0', 'conv'], 'weight')."""
  out: list[str] = []
  for p in name.split("."):
    if p.isdigit() and out:
      out[-1] = f"{out[-1]}_{p}"
    else:
      out.append(p)
  return out[:-1], out[-1]


def _torch_to_flax(name: str, value: np.ndarray
                   ) -> tuple[str, tuple[str, ...], np.ndarray] | None:
  """Maps one state_dict entry to (collection, path, array); None = skip."""
  mod, leaf = _torch_module_path(name)
  value = np.asarray(value)
  if leaf == "num_batches_tracked":
    return None
  if leaf in _BN_LEAVES:
    return "batch_stats", tuple(mod) + (_BN_LEAVES[leaf],), value
  if leaf == "bias":
    return "params", tuple(mod) + ("bias",), value
  if leaf != "weight":
    raise KeyError(f"Unknown state_dict entry {name!r}")
  if value.ndim == 1:  # BatchNorm weight
    return "params", tuple(mod) + ("scale",), value
  if value.ndim == 2:  # Linear (out, in) -> (in, out)
    return "params", tuple(mod) + ("kernel",), value.T
  if value.ndim == 4:  # Conv2d (O, I, kh, kw) -> HWIO
    return "params", tuple(mod) + ("kernel",), value.transpose(2, 3, 1, 0)
  if value.ndim == 5:  # Conv3d (O, 1, kh, kw, kd) -> 2-D HWIO (kh, kw, kd, O)
    if value.shape[1] != 1:
      raise ValueError(f"{name}: Conv3d with {value.shape[1]} input channels "
                       "has no 2-D equivalent here")
    return "params", tuple(mod) + ("kernel",), value[:, 0].transpose(1, 2, 3, 0)
  raise ValueError(f"{name}: unexpected weight shape {value.shape}")


def _flatten(tree: Mapping, prefix=()) -> dict[tuple[str, ...], Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict:
  out: dict = {}
  for path, v in flat.items():
    d = out
    for k in path[:-1]:
      d = d.setdefault(k, {})
    d[path[-1]] = v
  return out


def state_dict_keys(state_dict: Mapping[str, Any]) -> list[str]:
  """The torch state_dict names in a mapping (drops 'prefix/...' entries)."""
  return [k for k in state_dict if "/" not in k]


def infer_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Model config (Model kwargs incl. num_classes) from state_dict shapes."""
  def shape(k):
    if k not in state_dict:
      raise KeyError(f"state_dict lacks {k!r} (needed to infer the config)")
    return tuple(np.shape(state_dict[k]))

  stem = [shape(f"frame_rep.stem.{i}.conv.weight")[0] for i in range(3)]
  n_blocks = 0
  while f"frame_rep.features.{n_blocks}.mhca.group_conv3x3.weight" in state_dict:
    n_blocks += 1
  if n_blocks == 0:
    raise KeyError("state_dict has no frame_rep.features.* blocks")
  # A stage starts at block 0 and at every block with a patch_embed conv
  # (stride-2 blocks always have one; stage-0 block 0 has one iff widths
  # change). Widths come from the blocks' 3x3 convs.
  starts = [i for i in range(n_blocks)
            if i == 0 or f"frame_rep.features.{i}.patch_embed.conv.weight"
            in state_dict]
  if len(starts) != 4:
    raise ValueError(f"Expected 4 stages, found block starts {starts}")
  depths = [e - s for s, e in zip(starts, starts[1:] + [n_blocks])]
  widths = [shape(f"frame_rep.features.{s}.mhca.group_conv3x3.weight")[0]
            for s in starts]
  hidden = [shape(f"frame_rep.features.{s}.mlp.conv1.weight")[0] for s in starts]
  mlp_ratio = 3.0
  if any(_make_divisible(w * mlp_ratio, 32) != h for w, h in zip(widths, hidden)):
    raise ValueError(f"MLP hidden widths {hidden} do not match mlp_ratio 3 for "
                     f"widths {widths}")
  conv3d = shape("mer.conv3d.weight")  # (8, 1, 3, 3, 8)
  feature_dim = shape("frame_rep.proj_head.0.weight")[0]
  return dict(
      num_classes=shape("mer.fc2.weight")[0],
      stem_chs=tuple(stem),
      depths=tuple(depths),
      widths=tuple(widths),
      mlp_ratio=mlp_ratio,
      head_dim=8,
      path_dropout=0.1,
      num_frames=8,
      feature_dim=feature_dim,
      rep_shape=(64, 64, conv3d[4]),
      rep_channels=conv3d[0],
      fc1_hidden=shape("mer.fc1.weight")[0],
      segnet_widths=tuple(shape(f"dyimg_net.conv{s}1.weight")[0]
                          for s in range(1, 5)),
  )


@functools.lru_cache(maxsize=8)
def _variable_shapes(config_items: tuple) -> dict:
  config = dict(config_items)
  model = Model(**config)
  t = config.get("num_frames", 8)
  h, w = 64, 64
  x = jax.ShapeDtypeStruct((1, t, h, w, 1), jnp.float32)
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x)
  return {c: {p: tuple(v.shape) for p, v in _flatten(shapes[c]).items()}
          for c in ("params", "batch_stats")}


def _config_key(config: Mapping[str, Any]) -> tuple:
  return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                      for k, v in config.items()))


def load(state_dict: Mapping[str, Any], config: Mapping[str, Any] | None = None,
         strict: bool = True) -> dict[str, dict]:
  """Converts a torch FDP state_dict to flax variables.

  Args:
    state_dict: torch name -> array (numpy or torch tensors). Entries whose
      name contains '/' (reference-file extras) and `num_batches_tracked` are
      ignored.
    config: Model kwargs; inferred from the shapes when None.
    strict: raise on missing / unexpected keys and shape mismatches.

  Returns:
    {'params': ..., 'batch_stats': ...} (nested dicts of float32 numpy arrays).
  """
  if config is None:
    config = infer_config(state_dict)
  expected = _variable_shapes(_config_key(config))
  flat: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for name in state_dict_keys(state_dict):
    value = state_dict[name]
    if hasattr(value, "detach"):  # torch tensor
      value = value.detach().cpu().numpy()
    conv = _torch_to_flax(name, value)
    if conv is None:
      continue
    coll, path, arr = conv
    exp = expected[coll].get(path)
    if exp is None:
      if strict:
        raise KeyError(f"Unexpected state_dict key {name!r} (-> {coll}/"
                       f"{'/'.join(path)}) for config {dict(config)}")
      continue
    if tuple(arr.shape) != exp:
      raise ValueError(f"Shape mismatch for {name!r}: torch {np.shape(value)} "
                       f"-> flax {arr.shape}, expected {exp}")
    flat[coll][path] = np.asarray(arr, np.float32)
  for coll in ("params", "batch_stats"):
    missing = sorted(set(expected[coll]) - set(flat[coll]))
    if missing and strict:
      names = [to_torch_name(coll, p) for p in missing[:10]]
      raise KeyError(f"state_dict is missing {len(missing)} keys, e.g. {names}")
  return {c: _unflatten(flat[c]) for c in ("params", "batch_stats")}


def to_torch_name(collection: str, path: Sequence[str]) -> str:
  """Flax variable path -> torch state_dict name."""
  mods = [re.sub(r"^(stem|features|proj_head)_(\d+)$", r"\1.\2", p)
          for p in path[:-1]]
  leaf = path[-1]
  if collection == "batch_stats":
    leaf = {"mean": "running_mean", "var": "running_var"}[leaf]
  else:
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[leaf]
  return ".".join(mods + [leaf])


def to_state_dict(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Inverse of `load` (num_batches_tracked is not tracked and not emitted)."""
  out = {}
  for coll in ("params", "batch_stats"):
    for path, v in _flatten(variables.get(coll, {})).items():
      v = np.asarray(v)
      name = to_torch_name(coll, path)
      if path[-1] == "kernel":
        if v.ndim == 2:
          v = v.T
        elif path[-2] == "conv3d":
          v = v.transpose(3, 0, 1, 2)[:, None]
        else:
          v = v.transpose(3, 2, 0, 1)
      out[name] = np.ascontiguousarray(v)
  return out


# ---------------------------------------------------------------------------
# Checkpoints of converted weights.
# ---------------------------------------------------------------------------

CONFIG_FILE = "model_config.json"
VARIABLES_DIR = "variables"


def save_checkpoint(ckpt_dir: str, variables: Mapping[str, Any],
                    config: Mapping[str, Any]) -> None:
  """Writes `{'params', 'batch_stats'}` (orbax) + the Model config (JSON).

  Layout: `ckpt_dir/variables/` (orbax StandardCheckpointer) and
  `ckpt_dir/model_config.json` (Model kwargs, incl. num_classes).
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  ckpt_dir = os.path.abspath(ckpt_dir)
  os.makedirs(ckpt_dir, exist_ok=True)
  state = {c: jax.tree.map(jnp.asarray, dict(variables[c]))
           for c in ("params", "batch_stats")}
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(ckpt_dir, VARIABLES_DIR), state, force=True)
  cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
  with open(os.path.join(ckpt_dir, CONFIG_FILE), "w") as f:
    json.dump({"model_name": "fdp_official", "model": cfg}, f, indent=1)


def restore_checkpoint(ckpt_dir: str) -> tuple[dict, dict[str, Any]]:
  """Reads what `save_checkpoint` wrote: (variables, Model kwargs)."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  ckpt_dir = os.path.abspath(ckpt_dir)
  with open(os.path.join(ckpt_dir, CONFIG_FILE)) as f:
    config = json.load(f)["model"]
  config = {k: tuple(v) if isinstance(v, list) else v
            for k, v in config.items()}
  shapes = _variable_shapes(_config_key(config))
  target = {c: _unflatten({p: jax.ShapeDtypeStruct(s, jnp.float32)
                           for p, s in shapes[c].items()})
            for c in ("params", "batch_stats")}
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(os.path.join(ckpt_dir, VARIABLES_DIR), target)
  return variables, config


def preview(aux: Mapping[str, Array], batch: Mapping[str, Array]
            ) -> tuple[Array, Array | None]:
  """The trainer's per-clip picture: (constructed dynamic image [B, H, W] in
  [0, 1], its target `batch["dynamic_image"]` [B, H, W] or None)."""
  return aux["dynamic_image"], batch.get("dynamic_image")
