"""Our own PyTorch transcription of the official FDP model, for benchmarks.

This is NOT the official `fdp.py` of github.com/CYF-cuber/FDP (that file is
deliberately not vendored here). It is a transcription written from the
line-by-line specification of the official code (FDP_SPEC.md, section 2-3)
and from our code-faithful Flax port `mer_jax.models.fdp_official`, with the
same module / parameter names as the official state_dict, so that

  * official state_dicts (and the reference vectors' state_dict entries) load
    with `load_state_dict(strict=True)`, and
  * `fdp_official.to_state_dict(variables)` loads the same way (see
    `load_numpy_state_dict`; BatchNorm's `num_batches_tracked`, which the Flax
    port does not track, is filled in by torch).

What it is for: a side-by-side CPU benchmark of one official training step
(`time_train_step`, used by `scripts/bench.py`) and a PyTorch counterpart for
numerical checks (`tests/test_fdp_torch.py` compares it with the reference
vectors made with the official code and with the Flax port).

The official quirks are reproduced on purpose (see the Flax port's docstring
and FDP_SPEC.md section 6): only the LFA conv blocks of the frame encoder
exist; MHCA is one dense 3x3 conv; the frame encoder is called once per frame
(8 separate BatchNorm batch statistics / running-stat updates per step); the
per-frame features are RAW-reshaped (B, 8, 4096) -> (B, 1, 64, 64, 8) (no
transpose, so the Conv3d depth axis runs over feature dims, not time);
Conv3d(1, 8, (3, 3, 8), padding (1, 1, 0)); MaxPool3d((3, 3, 1)); a full
SegNet with max-unpooling for the dynamic image; sigmoid.

Differences from the official file that do not change any number: width
arguments (defaults = the official full model, which has none), `forward`
instead of an overridden `__call__` (so forward hooks fire on FDP and
CLS_Net), the unreachable GFA / E_MHSA code is not transcribed, and the
input may also be given without the official dummy axis (see `FDP.forward`).

Imports torch, numpy and the standard library, and from mer_jax only the
official `make_divisible` (shared with the Flax port).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The official `_make_divisible` (LFA MLP width), shared with the Flax port.
from mer_jax.models.fdp_official.model import make_divisible

NORM_EPS = 1e-5
# Official training hyper-parameters (train.py).
LR, WEIGHT_DECAY, DY_WEIGHT, MER_WEIGHT = 1e-4, 1e-3, 100.0, 1.0


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
                  a: float = -2.0, b: float = 2.0) -> torch.Tensor:
  """timm 0.4.9 `trunc_normal_`: inverse-CDF sampling, bounds a, b ABSOLUTE.

  Draws u ~ U(2 cdf(a') - 1, 2 cdf(b') - 1) (a', b' the standardised bounds),
  maps it through erfinv, scales by std * sqrt(2), shifts by mean and clamps
  to [a, b]. With std .02 and a, b = -+2 this is an (effectively
  untruncated) N(mean, std^2). Not `torch.nn.init.trunc_normal_`: recent
  torch versions sample differently, which would change the RNG stream and
  so the official initial weights for a given seed.
  """
  def norm_cdf(x):
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

  with torch.no_grad():
    lo = norm_cdf((a - mean) / std)
    hi = norm_cdf((b - mean) / std)
    tensor.uniform_(2 * lo - 1, 2 * hi - 1)
    tensor.erfinv_()
    tensor.mul_(std * math.sqrt(2.0))
    tensor.add_(mean)
    tensor.clamp_(min=a, max=b)
    return tensor


class DropPath(nn.Module):
  """timm 0.4.9 per-sample stochastic depth.

  `x / keep * floor(keep + U[0, 1))` with one draw per sample (dim 0);
  identity in eval mode or at rate 0.
  """

  def __init__(self, drop_prob: float = 0.0):
    super().__init__()
    self.drop_prob = drop_prob

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.drop_prob == 0.0 or not self.training:
      return x
    keep_prob = 1.0 - self.drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = keep_prob + torch.rand(shape, dtype=x.dtype,
                                           device=x.device)
    random_tensor.floor_()
    return x.div(keep_prob) * random_tensor

  def extra_repr(self) -> str:
    return f"drop_prob={self.drop_prob}"


# ---------------------------------------------------------------------------
# Frame encoder ("Local_Global_Feature_Aware_Transformer", LFA blocks only).
# ---------------------------------------------------------------------------

class ConvBNReLU(nn.Module):
  """Conv2d(k, stride, pad 1, no bias) -> BN(eps 1e-5) -> ReLU."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
               stride: int):
    super().__init__()
    self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                          padding=1, bias=False)
    self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS)
    self.act = nn.ReLU(inplace=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.act(self.norm(self.conv(x)))


class PatchEmbed(nn.Module):
  """stride 2: AvgPool2d(2, ceil, no pad count) -> 1x1 conv -> BN;
  in != out: 1x1 conv -> BN; otherwise identity (no parameters)."""

  def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
    super().__init__()
    if stride == 2:
      self.avgpool = nn.AvgPool2d((2, 2), stride=2, ceil_mode=True,
                                  count_include_pad=False)
      self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, bias=False)
      self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS)
    elif in_channels != out_channels:
      self.avgpool = nn.Identity()
      self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, bias=False)
      self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS)
    else:
      self.avgpool = nn.Identity()
      self.conv = nn.Identity()
      self.norm = nn.Identity()

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.norm(self.conv(self.avgpool(x)))


class MHCA(nn.Module):
  """Official "multi-head convolutional attention": ONE dense 3x3 conv
  (groups=1, no bias, no BN/ReLU/projection); head_dim is not used."""

  def __init__(self, out_channels: int, head_dim: int):
    super().__init__()
    del head_dim
    self.group_conv3x3 = nn.Conv2d(out_channels, out_channels, 3, 1,
                                   padding=1, groups=1, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.group_conv3x3(x)


class Mlp(nn.Module):
  """1x1 conv (bias) -> ReLU -> Dropout -> 1x1 conv (bias) -> Dropout."""

  def __init__(self, in_features: int, mlp_ratio: float = 3.0,
               drop: float = 0.0):
    super().__init__()
    hidden = make_divisible(in_features * mlp_ratio, 32)
    self.conv1 = nn.Conv2d(in_features, hidden, 1, bias=True)
    self.act = nn.ReLU(inplace=True)
    self.drop1 = nn.Dropout(drop)
    self.conv2 = nn.Conv2d(hidden, in_features, 1, bias=True)
    self.drop2 = nn.Dropout(drop)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.drop2(self.conv2(self.drop1(self.act(self.conv1(x)))))


class LFA(nn.Module):
  """Official LFA block: patch_embed, x + DropPath(MHCA(x)),
  x + DropPath(Mlp(BN(x))); one DropPath rate for both branches."""

  def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
               path_dropout: float = 0.0, drop: float = 0.0,
               head_dim: int = 8, mlp_ratio: float = 3.0):
    super().__init__()
    assert out_channels % head_dim == 0, (out_channels, head_dim)
    self.patch_embed = PatchEmbed(in_channels, out_channels, stride)
    self.mhca = MHCA(out_channels, head_dim)
    self.attention_path_dropout = DropPath(path_dropout)
    self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS)
    self.mlp = Mlp(out_channels, mlp_ratio=mlp_ratio, drop=drop)
    self.mlp_path_dropout = DropPath(path_dropout)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.patch_embed(x)
    x = x + self.attention_path_dropout(self.mhca(x))
    return x + self.mlp_path_dropout(self.mlp(self.norm(x)))


class FrameEncoder(nn.Module):
  """Official `frame_rep`: one frame (B, 1, H, W) -> (B, feature_dim).

  stem (4 ConvBNReLU, strides 2, 1, 1, 2) -> LFA blocks (stage strides
  1, 2, 2, 2) -> BN -> AdaptiveAvgPool2d(1) -> flatten -> Linear (no
  activation). Init: timm trunc_normal_(std .02, absolute bounds +-2) for
  every Conv2d / Linear weight, zero biases, BN weight 1 / bias 0.
  """

  def __init__(self, stem_chs: Sequence[int], depths: Sequence[int],
               widths: Sequence[int], path_dropout: float, feature_dim: int,
               mlp_ratio: float = 3.0, head_dim: int = 8, drop: float = 0.0,
               strides: Sequence[int] = (1, 2, 2, 2), in_chans: int = 1):
    super().__init__()
    self.stem = nn.Sequential(
        ConvBNReLU(in_chans, stem_chs[0], 3, 2),
        ConvBNReLU(stem_chs[0], stem_chs[1], 3, 1),
        ConvBNReLU(stem_chs[1], stem_chs[2], 3, 1),
        ConvBNReLU(stem_chs[2], stem_chs[2], 3, 2),
    )
    # torch.linspace (float32) then .item(), as the official code.
    dpr = [x.item() for x in torch.linspace(0, path_dropout, sum(depths),
                                            device="cpu")]
    features = []
    in_ch = stem_chs[-1]
    idx = 0
    for stage, (depth, width) in enumerate(zip(depths, widths)):
      for b in range(depth):
        stride = 2 if (strides[stage] == 2 and b == 0) else 1
        features.append(LFA(in_ch, width, stride=stride,
                            path_dropout=dpr[idx], drop=drop,
                            head_dim=head_dim, mlp_ratio=mlp_ratio))
        in_ch = width
        idx += 1
    self.features = nn.Sequential(*features)
    self.norm = nn.BatchNorm2d(in_ch, eps=NORM_EPS)
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.proj_head = nn.Sequential(nn.Linear(in_ch, feature_dim))
    self._initialize_weights()

  def _initialize_weights(self):
    for m in self.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        trunc_normal_(m.weight, std=0.02)  # timm 0.4.9, bounds +-2 absolute
        if m.bias is not None:
          nn.init.constant_(m.bias, 0)
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1.0)
        nn.init.constant_(m.bias, 0)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.stem(x)
    x = self.features(x)
    x = self.norm(x)
    x = self.avgpool(x)
    x = torch.flatten(x, 1)
    return self.proj_head(x)


# ---------------------------------------------------------------------------
# MER head and dynamic-image SegNet (PyTorch default init).
# ---------------------------------------------------------------------------

class CLSNet(nn.Module):
  """Official `mer` (CLS_Net): Conv3d -> MaxPool3d((3, 3, 1)) -> Flatten ->
  fc1 -> ReLU -> fc2. Returns (logits, conv3d output)."""

  def __init__(self, num_classes: int = 5, hidden: int = 256,
               rep_shape: Sequence[int] = (64, 64, 8), rep_channels: int = 8):
    super().__init__()
    h, w, k = rep_shape
    self.conv3d = nn.Conv3d(1, rep_channels, kernel_size=(3, 3, k),
                            stride=(1, 1, 1), padding=(1, 1, 0))
    self.fc1 = nn.Linear(rep_channels * (h // 3) * (w // 3), hidden)
    self.fc2 = nn.Linear(hidden, num_classes)
    self.maxpooling3d = nn.MaxPool3d(kernel_size=(3, 3, 1))
    self.flatten = nn.Flatten()

  def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """r (B, 1, H, W, K) -> (logits (B, classes), y (B, C, H, W, 1))."""
    y = self.conv3d(r)
    x = self.flatten(self.maxpooling3d(y))
    x = F.relu(self.fc1(x))
    return self.fc2(x), y


class SegNet(nn.Module):
  """Official `SegNet(8, 1)`: VGG16-style encoder with 2x2 max-pool indices
  and a max-unpooling decoder; every conv 3x3 pad 1 with bias, BN momentum
  0.1, ReLU, except the last conv (conv11d). Widths (a, b, c, d)."""

  _ENC = (("11", "12"), ("21", "22"), ("31", "32", "33"), ("41", "42", "43"),
          ("51", "52", "53"))
  _DEC = (("53d", "52d", "51d"), ("43d", "42d", "41d"), ("33d", "32d", "31d"),
          ("22d", "21d"), ("12d",))

  def __init__(self, input_nbr: int = 8, label_nbr: int = 1,
               widths: Sequence[int] = (64, 128, 256, 512)):
    super().__init__()
    a, b, c, d = widths
    # (name, in, out) in the official construction order.
    layers = [
        ("11", input_nbr, a), ("12", a, a),
        ("21", a, b), ("22", b, b),
        ("31", b, c), ("32", c, c), ("33", c, c),
        ("41", c, d), ("42", d, d), ("43", d, d),
        ("51", d, d), ("52", d, d), ("53", d, d),
        ("53d", d, d), ("52d", d, d), ("51d", d, d),
        ("43d", d, d), ("42d", d, d), ("41d", d, c),
        ("33d", c, c), ("32d", c, c), ("31d", c, b),
        ("22d", b, b), ("21d", b, a),
        ("12d", a, a),
    ]
    for name, cin, cout in layers:
      setattr(self, f"conv{name}", nn.Conv2d(cin, cout, 3, padding=1))
      setattr(self, f"bn{name}", nn.BatchNorm2d(cout, momentum=0.1))
    self.conv11d = nn.Conv2d(a, label_nbr, 3, padding=1)

  def _cbr(self, x: torch.Tensor, name: str) -> torch.Tensor:
    return F.relu(getattr(self, f"bn{name}")(getattr(self, f"conv{name}")(x)))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    """(B, Cin, H, W) -> logits (B, label_nbr, H, W)."""
    indices = []
    for stage in self._ENC:
      for name in stage:
        x = self._cbr(x, name)
      x, idx = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
      indices.append(idx)
    for stage, idx in zip(self._DEC, reversed(indices)):
      x = F.max_unpool2d(x, idx, kernel_size=2, stride=2)
      for name in stage:
        x = self._cbr(x, name)
    return self.conv11d(x)


class FDP(nn.Module):
  """Official FDP (transcription). Defaults = the official full model.

  Args (the same as `mer_jax.models.fdp_official.Model`):
    num_classes: MER classes (official 5).
    stem_chs: stem widths (official (64, 32, 64)).
    depths: LFA blocks per stage (official (3, 4, 10, 3)).
    widths: stage widths (official (96, 192, 384, 768)).
    mlp_ratio: LFA MLP hidden = make_divisible(C * mlp_ratio, 32).
    head_dim: only asserted (width % head_dim == 0), as in the official code.
    path_dropout: max stochastic-depth rate, linspace over all blocks.
    num_frames: T (official 8).
    feature_dim: per-frame feature size (official 4096).
    rep_shape: target of the raw reshape (official (64, 64, 8)).
    rep_channels: Conv3d out channels = SegNet in channels (official 8).
    fc1_hidden: MER head hidden width (official 256).
    segnet_widths: SegNet widths (official (64, 128, 256, 512)).
  """

  def __init__(self, num_classes: int = 5,
               stem_chs: Sequence[int] = (64, 32, 64),
               depths: Sequence[int] = (3, 4, 10, 3),
               widths: Sequence[int] = (96, 192, 384, 768),
               mlp_ratio: float = 3.0, head_dim: int = 8,
               path_dropout: float = 0.1, num_frames: int = 8,
               feature_dim: int = 4096,
               rep_shape: Sequence[int] = (64, 64, 8), rep_channels: int = 8,
               fc1_hidden: int = 256,
               segnet_widths: Sequence[int] = (64, 128, 256, 512)):
    super().__init__()
    if num_frames * feature_dim != math.prod(rep_shape):
      raise ValueError(f"num_frames * feature_dim = {num_frames * feature_dim}"
                       f" does not fit rep_shape {tuple(rep_shape)}")
    self.num_frames = num_frames
    self.rep_shape = tuple(rep_shape)
    # Construction order = the official one (it fixes the RNG stream, so
    # torch.manual_seed(0); FDP(...) gives the official initial weights).
    self.frame_rep = FrameEncoder(stem_chs, depths, widths, path_dropout,
                                  feature_dim, mlp_ratio, head_dim)
    self.mer = CLSNet(num_classes, fc1_hidden, rep_shape, rep_channels)
    self.dyimg_net = SegNet(rep_channels, 1, segnet_widths)
    self.sigmoid = nn.Sigmoid()

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official forward.

    Args:
      x: the official layout (B, 1, T, 1, H, W) (a dummy axis, T grey frames),
        or (B, T, 1, H, W) without the dummy axis.

    Returns:
      (logits (B, num_classes), dynamic image after sigmoid (B, H', W')),
      (H', W') = rep_shape[:2].
    """
    if x.ndim == 6:
      x = x[:, 0]
    if x.ndim != 5 or x.shape[1] != self.num_frames:
      raise ValueError(f"Expected (B, 1, {self.num_frames}, C, H, W) or "
                       f"(B, {self.num_frames}, C, H, W), got {tuple(x.shape)}")
    # One encoder call per frame: per-frame BN batch statistics and T
    # sequential running-stat updates in train mode.
    feats = [self.frame_rep(x[:, t]).unsqueeze(1) for t in range(x.shape[1])]
    dynamic_rep = torch.cat(feats, dim=1)                  # (B, T, F)
    # RAW C-order reshape (not a transpose), as the official code.
    dynamic_rep = dynamic_rep.reshape(-1, 1, *self.rep_shape)
    logits, y = self.mer(dynamic_rep)                      # y (B, C, H, W, 1)
    di = self.dyimg_net(y[..., 0])                         # (B, 1, H, W)
    return logits, self.sigmoid(di[:, 0])


# ---------------------------------------------------------------------------
# State dicts, optimizer, training step, timing.
# ---------------------------------------------------------------------------

def load_numpy_state_dict(model: nn.Module, state_dict: Mapping[str, Any],
                          strict: bool = True):
  """`model.load_state_dict` from numpy arrays (or tensors).

  Entries whose name contains '/' (reference-file extras such as 'in/x') are
  skipped. A missing BatchNorm `num_batches_tracked` (the Flax port's
  `to_state_dict` does not emit it) is filled in by torch (a plain dict has
  no version metadata), so `strict=True` still holds for everything else.
  Returns load_state_dict's result.
  """
  sd = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(
      np.array(v, copy=True))) for k, v in state_dict.items() if "/" not in k}
  return model.load_state_dict(sd, strict=strict)


def official_optimizer(model: nn.Module, lr: float = LR,
                       weight_decay: float = WEIGHT_DECAY
                       ) -> torch.optim.Optimizer:
  """train.py: Adam(lr 1e-4, weight_decay 1e-3), coupled L2 on all params."""
  return torch.optim.Adam(
      [{"params": [p for p in model.parameters() if p.requires_grad]}],
      lr=lr, weight_decay=weight_decay)


def train_step(model: nn.Module, opt: torch.optim.Optimizer,
               video: torch.Tensor, dyimg: torch.Tensor, label: torch.Tensor,
               dy_weight: float = DY_WEIGHT, mer_weight: float = MER_WEIGHT
               ) -> dict[str, Any]:
  """One official training step (train.py:76-91 / time_train_step.py).

  zero_grad, forward, me = nll_loss(log_softmax(logits)), dy = MSE(sigmoid
  DI, target), final = dy_weight * dy + mer_weight * me, backward, opt.step().
  The model's train/eval mode is left as it is (the official trainer runs
  epoch 1 in train mode and the rest in eval mode).

  Args:
    video: (B, 1, T, 1, H, W) (see FDP.forward).
    dyimg: the dynamic-image target: uint8 (B, H, W) as the official dataset
      returns it (divided by 255 here, as train.py does), or a float target
      already in [0, 1].
    label: int64 (B,).

  Returns:
    {'loss_me', 'loss_dy', 'loss_final': python floats, 'logits' (B, K),
     'dyimg' (B, H, W): detached outputs of this step's forward}.
  """
  if dyimg.dtype == torch.uint8:
    dyimg = dyimg / 255.0
  opt.zero_grad()
  pred_mer, pred_dyimg = model(video)
  me_loss = F.nll_loss(F.log_softmax(pred_mer, dim=1), label)
  dy_loss = nn.MSELoss(reduction="mean")(pred_dyimg.to(torch.float32),
                                         dyimg.to(torch.float32))
  final_loss = (dy_loss.to(torch.float32).cpu() * dy_weight +
                me_loss.to(torch.float32).cpu() * mer_weight)
  final_loss.backward()
  opt.step()
  return {"loss_me": me_loss.item(), "loss_dy": dy_loss.item(),
          "loss_final": final_loss.item(), "logits": pred_mer.detach(),
          "dyimg": pred_dyimg.detach()}


def _loadavg() -> list[float] | None:
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def make_step(batch: int = 8, seed: int = 0,
              model_kwargs: Mapping[str, Any] | None = None,
              bfloat16: bool = False):
  """`(step, model)`: `step()` runs one official training step, returns the loss.

  The inputs and model of `time_train_step` (which see); the caller sets
  the thread count. `scripts/bench.py` interleaves such steps with JAX's.
  """
  torch.manual_seed(seed)
  model = FDP(**dict(model_kwargs or {}))
  model.train()
  opt = official_optimizer(model)
  g = torch.Generator().manual_seed(seed)
  t, h, w = model.num_frames, 64, 64
  video = torch.randn(batch, 1, t, 1, h, w, generator=g)
  dyimg = torch.randint(0, 256, (batch,) + model.rep_shape[:2], generator=g,
                        dtype=torch.uint8)
  label = torch.randint(0, model.mer.fc2.out_features, (batch,), generator=g)

  def step() -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
      return float(train_step(model, opt, video, dyimg, label)["loss_final"])

  return step, model


def time_train_step(batch: int = 8, warmup: int = 2, reps: int = 5,
                    threads: int = 2, seed: int = 0,
                    model_kwargs: Mapping[str, Any] | None = None,
                    bfloat16: bool = False) -> dict[str, Any]:
  """Wall time of the official training step on CPU (full model by default).

  Same protocol as the reference timing (time_train_step.py): FDP() seeded
  with `seed`, train mode (DropPath active), official input shape
  (batch, 1, 8, 1, 64, 64) of N(0, 1) values, uint8 DI targets, random
  labels, Adam(1e-4, wd 1e-3); `reps` timed steps after `warmup`.
  `bfloat16`: the step under `torch.autocast("cpu", torch.bfloat16)`: convs
  and linears run in bfloat16, their backward follows (the official code has
  no such mode).
  `torch.set_num_threads(threads)` holds during the call and is restored.

  Returns:
    {'median_s', 'min_s', 'max_s', 'times_s', 'cpu_s' (process CPU time per
     timed step), 'median_cpu_s', 'cpu_over_wall' (per timed step; ~threads
     when the cores were ours, lower when the machine was contended),
     'batch', 'threads', 'warmup', 'reps', 'n_params', 'torch',
     'loadavg_before', 'loadavg_after', 'final_loss'}.
  Check the load: on a shared 2-core machine a contended step can take 10x
  longer (the reference's first, discarded timing attempt saw the same).
  """
  prev_threads = torch.get_num_threads()
  torch.set_num_threads(threads)
  try:
    step, model = make_step(batch, seed, model_kwargs, bfloat16)
    load0 = _loadavg()
    times, cpus, loss = [], [], float("nan")
    for i in range(warmup + reps):
      w0, c0 = time.perf_counter(), time.process_time()
      loss = step()
      dt, dc = time.perf_counter() - w0, time.process_time() - c0
      if i >= warmup:
        times.append(dt)
        cpus.append(dc)
    return {
        "median_s": statistics.median(times) if times else float("nan"),
        "min_s": min(times) if times else float("nan"),
        "max_s": max(times) if times else float("nan"),
        "times_s": times,
        "cpu_s": cpus,
        "median_cpu_s": statistics.median(cpus) if cpus else float("nan"),
        "cpu_over_wall": [round(c / w, 2) for c, w in zip(cpus, times)],
        "batch": batch, "threads": threads, "warmup": warmup, "reps": reps,
        "bfloat16": bfloat16,
        "n_params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "loadavg_before": load0, "loadavg_after": _loadavg(),
        "final_loss": loss,
    }
  finally:
    torch.set_num_threads(prev_threads)


if __name__ == "__main__":
  import json
  print(json.dumps(time_train_step(), indent=1))
