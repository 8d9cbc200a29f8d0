"""PyTorch-compatible layers in Flax (NHWC), for the official FDP port.

Each layer reproduces its torch counterpart's numerics and initialisation:
`Conv2d` / `Linear` (optionally with bfloat16 operands and float32
accumulation, `mixed_conv`), `TorchBatchNorm` (torch train/eval semantics,
per-call statistics over leading group axes), timm's `DropPath`, the 2x2
pools of `F.avg_pool2d(ceil_mode=True)`, `F.max_pool2d(return_indices=True)`
and `F.max_unpool2d`. Used by `mer_jax.models.fdp_official.model`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

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


def avg_pool_2x2_ceil(x: Array) -> Array:
  """AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False); [..., H, W, C]."""
  h, w, c = x.shape[-3:]
  if h % 2 == 0 and w % 2 == 0:
    return x.reshape(x.shape[:-3] + (h // 2, 2, w // 2, 2, c)).mean((-4, -2))
  # Odd sizes: the partial border windows average only their valid entries.
  lead = x.shape[:-3]
  y = nn.avg_pool(x.reshape((-1, h, w, c)), (2, 2), strides=(2, 2),
                  padding=((0, h % 2), (0, w % 2)), count_include_pad=False)
  return y.reshape(lead + y.shape[1:])


def max_pool_2x2_argmax(x: Array) -> tuple[Array, Array]:
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


def max_unpool_2x2(v: Array, idx: Array) -> Array:
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
