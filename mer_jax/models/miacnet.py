"""MIACNet: a two-branch micro-action network (position vs action features).

Li, Niu, Zhao, "From Macro to Micro: Boosting micro-expression recognition via
pre-training on macro-expression videos" (arXiv 2405.16451). Only the
abstract of the paper could be read (see the team's MA2MI_NOTES.md): MIACNet
"decouples facial position features and facial action features". Everything
below the abstract level is a documented reconstruction anchored on the same
authors' MMNet (IJCAI 2022, github.com/muse1998/MMNet), which has exactly this
two-branch layout. Choices the paper's text (as available) does not fix:

Inputs (`frames` `[B, T, H, W, C]`, sampled onset -> offset by the pipeline, so
frame 0 is the onset):
  * Onset = frame 0. The position branch sees frame 0 and nothing else, in
    training and evaluation (so "position" can never carry motion).
  * Apex. `apex="annotated"` (default; MMNet's protocol, used by the
    CASME II / SAMM / synthetic configs): the sampled frame nearest to the
    record's annotated apex, `batch["apex_index"]` (the trainer passes it:
    `Model.batch_inputs`), in training and at test time, as MMNet uses the
    annotated onset and apex. A clip without an annotated apex reaches the
    batch as -1 (a builder's stand-in apex, `apex_annotated` False, e.g.
    every SMIC clip; a record without one; eval padding); for those, and
    when no `apex_index` is given at all (`mer_jax.inference` on a raw
    video), the apex is estimated with the `apex_fallback` rule. How many
    clips of a corpus fall back is logged when it is opened
    (`sources.load_corpus`), and `aux["apex_fallback"]` marks them per
    clip. An annotated apex at frame 0 (the onset) is used as frame 1.
    Estimated apex, the options: `apex="detrended"`: the frame farthest
    (mean |.|) from the linear interpolation between onset (frame 0) and
    offset (frame T-1); slow head drift and illumination change are ~linear
    in time and cancel, the expression (neutral at onset and offset) does
    not. `apex="motion"`: the frame farthest from the onset (fits
    onset->apex-only clips such as CK+). `apex="middle"`: frame T // 2.
    Where these come from: "annotated" from MMNet's code; "detrended" (the
    fallback) from the reasoning above. An earlier version chose "middle"
    for the synthetic corpus from the test accuracy of fold sub01; that
    choice is withdrawn (test-label selection) and no estimated rule is
    chosen on any fold's score.
  * Train-time temporal jitter, in MMNet's manner (MMNet samples onset a little
    later and apex a little earlier than annotated): with `train=True` an
    estimated apex is drawn uniformly among the `apex_topk` frames of largest
    motion (not for "middle", which is fixed; an annotated apex is used as
    is: MMNet's apex jitter, <= 0.15 (apex - onset) / 4 frames, is below one
    of the T sampled frames), and the action branch's reference frame among
    frames 0..`onset_jitter` (never at or after the apex), using the
    `dropout` rng. The position branch still sees frame 0 only. At
    evaluation: onset 0, the annotated (or argmax) apex, no randomness.

Action branch (`ActionBranch`, MMNet's CA-ResNet): input apex - onset. A
strided 3x3 stem (MMNet: 3->180, s2) and a 3x3 conv (MMNet: ->128), then one
residual "CA block" per stage (conv3x3(stride)-BN-ReLU-conv1x1-BN + 1x1
projection shortcut, ReLU). Each block computes a spatial attention map
sigmoid(BN(conv1x1([mean_c, max_c]))), multiplies it by the previous stage's
map max-pooled (3x3, the stage's stride, pad 1) to the new resolution
("continuous attention": the map is carried and refined stage to stage) and
scales its output by it. MMNet at 224 px uses strides (1, 2, 2, 2) after the
stride-2 stem: 224 -> 14. Here the stage strides are a parameter; the output
grid is `H / (2 * prod(strides))`: 112 px with (1, 2, 2) -> 14 x 14 (the
paper's grid), the synthetic 64 px with (1, 2, 2) -> 8 x 8.
  Input scale: frame differences are ~1 % of the pixel range (baseline3d's
  lesson). Here the stem conv is followed by BatchNorm, which is scale
  invariant, so the difference needs no fixed gain; BN's running statistics are
  not transferred from pretraining (only `params` are), so macro-scale
  pretraining statistics never leak into micro-scale fine-tuning.

Position branch (`PositionBranch`, MMNet's Position Calibration module): the
onset frame cut into non-overlapping patches so that the token grid equals the
action grid (`position_input="patch"`, default: patch = H / grid, embedded by a
Dense on the flattened patch, which is cheaper than a strided conv on CPU), or,
as MMNet does, the onset area-resized to the grid with one token per pixel
(`position_input="resize"`). Learned absolute position embedding, `depth`
pre-norm transformer blocks (MMNet: depth 2, 4 heads, MLP ratio 4), no CLS
token, final LayerNorm. Its width equals the action branch's last width (the
sum fusion needs it).

Fusion and head: `fusion="sum"` (MMNet: F = A + P) or `fusion="gated"`
(F = A * sigmoid(Dense(P)) + P: position decides where action features
pass). Dropout (`dropout`, MMNet defines 0.1 but never applies it) on the
flattened map (the spatial layout is kept: *where* the face moves is the
class), one Dense to the classes.

BatchNorm everywhere in the action branch (as MMNet), momentum 0.9 rather
than flax's 0.99 so running statistics keep up in runs of a few hundred steps;
the position branch uses LayerNorm (ViT). `use_position=False` zeroes the
position map (action branch alone, for the two-branch ablation).

Decoupling: structural (disjoint inputs). `aux_losses(orth_weight=...)` adds
an optional orthogonality penalty mean_ij cos^2(A_ij, P_ij) between the two
branch feature vectors at each grid cell (0 = off, the default).

Transfer: submodules are named `position_branch` and `action_branch`, the same
names `mer_jax.models.ma2mi` uses, so MA2MI-pretrained parameters load by
path through `config.init_from`.
"""

from __future__ import annotations

from typing import Any, Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

_BN_MOMENTUM = 0.9  # short runs (hundreds of steps): running stats must keep up


def _bn(train: bool, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                      name=name)


class CABlock(nn.Module):
  """MMNet's residual block with continuous spatial attention.

  `(x [B, H, W, Cin], attn_last [B, H', W', 1] | None) ->
  (out [B, H/s, W/s, width], attn [B, H/s, W/s, 1])`.
  """
  width: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, attn_last, *, train: bool):
    s = self.stride
    y = nn.Conv(self.width, (3, 3), strides=(s, s), padding=1, use_bias=False,
                name="conv1")(x)
    y = nn.relu(_bn(train, "bn1")(y))
    y = nn.Conv(self.width, (1, 1), use_bias=False, name="conv2")(y)
    y = _bn(train, "bn2")(y)
    if s != 1 or x.shape[-1] != self.width:
      x = nn.Conv(self.width, (1, 1), strides=(s, s), use_bias=False,
                  name="down_conv")(x)
      x = _bn(train, "down_bn")(x)
    out = nn.relu(y + x)
    # Spatial attention from channel statistics (MMNet: conv1x1 2->1, BN, sigmoid).
    stats = jnp.concatenate([out.mean(-1, keepdims=True),
                             out.max(-1, keepdims=True)], axis=-1)
    attn = nn.Conv(1, (1, 1), use_bias=False, name="attn_conv")(stats)
    attn = nn.sigmoid(_bn(train, "attn_bn")(attn))
    if attn_last is not None:
      attn = attn * attn_last  # the prior from the previous stage
    return out * attn, attn


class ActionBranch(nn.Module):
  """Action features from a frame difference.

  `diff [B, H, W, C] -> (features [B, g, g, widths[-1]], attention
  [B, g1, g1, 1])` with `g = H / (2 * prod(strides))`; the attention returned is
  the first stage's map (MMNet returns it for visualisation).
  """
  stem_width: int = 32
  widths: Sequence[int] = (32, 64, 64)
  strides: Sequence[int] = (1, 2, 2)

  @nn.compact
  def __call__(self, diff: jnp.ndarray, *, train: bool):
    if len(self.widths) != len(self.strides):
      raise ValueError(f"widths {self.widths} and strides {self.strides} differ in length")
    x = nn.Conv(self.stem_width, (3, 3), strides=(2, 2), padding=1, use_bias=False,
                name="stem_conv")(diff)
    x = nn.relu(_bn(train, "stem_bn")(x))
    x = nn.Conv(self.widths[0], (3, 3), padding=1, use_bias=False, name="conv1")(x)
    x = nn.relu(_bn(train, "bn1")(x))
    attn, first = None, None
    for i, (w, s) in enumerate(zip(self.widths, self.strides)):
      if attn is not None:  # carry the previous map to this stage's resolution
        attn = nn.max_pool(attn, (3, 3), strides=(s, s), padding=((1, 1), (1, 1)))
      x, attn = CABlock(w, s, name=f"stage{i + 1}")(x, attn, train=train)
      if first is None:
        first = attn
    return x, first


class TransformerBlock(nn.Module):
  """Pre-norm ViT block: `[B, N, D] -> [B, N, D]`."""
  num_heads: int
  mlp_ratio: float = 4.0

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    y = nn.LayerNorm(name="norm1")(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, name="attn")(y, y)
    x = x + y
    y = nn.LayerNorm(name="norm2")(x)
    y = nn.Dense(int(d * self.mlp_ratio), name="mlp1")(y)
    y = nn.Dense(d, name="mlp2")(nn.gelu(y))
    return x + y


class PositionBranch(nn.Module):
  """Position features of one frame on a `grid x grid` token grid.

  `frame [B, H, W, C] -> [B, grid, grid, dim]` (H divisible by grid in
  "patch" mode).
  """
  dim: int = 64
  grid: int = 8
  depth: int = 2
  num_heads: int = 4
  mlp_ratio: float = 4.0
  input_mode: str = "patch"  # patch | resize (MMNet)

  @nn.compact
  def __call__(self, frame: jnp.ndarray):
    b, h, w, c = frame.shape
    g = self.grid
    if self.input_mode == "patch":
      if h % g or w % g:
        raise ValueError(f"frame {h}x{w} is not divisible into a {g}x{g} grid")
      x = einops.rearrange(frame, "b (h p) (w q) c -> b (h w) (p q c)",
                           p=h // g, q=w // g)
    elif self.input_mode == "resize":
      x = jax.image.resize(frame, (b, g, g, c), "linear", antialias=True)
      x = x.reshape(b, g * g, c)
    else:
      raise ValueError(f"position_input={self.input_mode!r}: patch | resize")
    x = nn.Dense(self.dim, name="embed")(x)
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (1, g * g, self.dim))
    x = x + pos
    for i in range(self.depth):
      x = TransformerBlock(self.num_heads, self.mlp_ratio, name=f"block{i}")(x)
    x = nn.LayerNorm(name="norm")(x)
    return x.reshape(b, g, g, self.dim)


def action_grid(size: int, strides: Sequence[int]) -> int:
  """The side of the action branch's output for `size` px input."""
  g = size
  for s in (2, *strides):
    g = -(-g // s)  # SAME-style ceil, as the padded convolutions give
  return g


APEX_RULES = ("annotated", "detrended", "motion", "middle")


def select_onset_apex(frames: jnp.ndarray, *, apex: str, apex_topk: int,
                      onset_jitter: int, rng: jax.Array | None,
                      apex_index: jnp.ndarray | None = None,
                      apex_fallback: str = "detrended"):
  """Chooses the action branch's reference (onset) and apex frame per clip.

  `frames [B, T, ...]` -> `(onset_idx [B], apex_idx [B])` int32. With `rng`
  (training), an estimated apex is uniform among the `apex_topk`
  largest-motion frames and the reference uniform in 0..onset_jitter (kept
  before the apex). `apex="annotated"` takes `apex_index [B]` (-1 = none,
  None = none for every clip) and estimates the others by `apex_fallback`.
  """
  b, t = frames.shape[:2]
  if apex == "annotated":
    if apex_fallback == "annotated" or apex_fallback not in APEX_RULES:
      raise ValueError(f"apex_fallback={apex_fallback!r}: detrended | motion "
                       "| middle")
    onset_idx, est = select_onset_apex(
        frames, apex=apex_fallback, apex_topk=apex_topk,
        onset_jitter=onset_jitter, rng=rng)
    if apex_index is None:
      return onset_idx, est
    ann = jnp.asarray(apex_index, jnp.int32).reshape(b)
    # Frame 0 is the onset (the reference), never the apex.
    apex_idx = jnp.where(ann >= 0, jnp.clip(ann, 1, t - 1), est)
    return jnp.minimum(onset_idx, apex_idx - 1), apex_idx
  if t < (3 if apex == "detrended" else 2):
    raise ValueError(f"apex={apex!r} needs more than {t} frames")
  axes = tuple(range(2, frames.ndim))
  if apex == "detrended":
    # Distance to the onset->offset interpolation: slow head drift and
    # illumination change are linear in time to first order and cancel, the
    # expression (0 at onset and offset) does not.
    w = jnp.linspace(0.0, 1.0, t).reshape((1, t) + (1,) * (frames.ndim - 2))
    ref = (1 - w) * frames[:, :1] + w * frames[:, -1:]
  else:
    ref = frames[:, :1]
  motion = jnp.abs(frames - ref).mean(axis=axes)  # [B, T]
  motion = motion.at[:, 0].set(-jnp.inf)  # the apex is never the onset
  if apex == "detrended":
    motion = motion.at[:, -1].set(-jnp.inf)  # nor the offset
  if apex == "middle":
    apex_idx = jnp.full((b,), t // 2, jnp.int32)
  elif apex in ("motion", "detrended"):
    if rng is None or apex_topk <= 1:
      apex_idx = jnp.argmax(motion, axis=1).astype(jnp.int32)
    else:
      k = min(apex_topk, t - 1)
      _, top = jax.lax.top_k(motion, k)  # [B, k]
      pick = jax.random.randint(jax.random.fold_in(rng, 0), (b,), 0, k)
      apex_idx = jnp.take_along_axis(top, pick[:, None], axis=1)[:, 0].astype(jnp.int32)
  else:
    raise ValueError(f"apex={apex!r}: {' | '.join(APEX_RULES)}")
  onset_idx = jnp.zeros((b,), jnp.int32)
  if rng is not None and onset_jitter > 0:
    onset_idx = jax.random.randint(jax.random.fold_in(rng, 1), (b,), 0,
                                   onset_jitter + 1).astype(jnp.int32)
    onset_idx = jnp.minimum(onset_idx, apex_idx - 1)
  return onset_idx, apex_idx


def _take(frames, idx):  # [B, T, ...], [B] -> [B, ...]
  return jnp.take_along_axis(
      frames, idx.reshape((-1, 1) + (1,) * (frames.ndim - 2)), axis=1)[:, 0]


class Branches(nn.Module, kw_only=True):
  """The two branches' settings, shared with `mer_jax.models.ma2mi.Model`.

  Both models build `action_branch` and `position_branch` from these fields
  (same names, same defaults), so MA2MI-pretrained parameters transfer.
  """
  stem_width: int = 32
  widths: Sequence[int] = (32, 64, 64)
  strides: Sequence[int] = (1, 2, 2)
  position_depth: int = 2
  position_heads: int = 4
  position_mlp_ratio: float = 4.0
  position_input: str = "patch"

  @nn.nowrap
  def action_branch_module(self, name: str | None = "action_branch"):
    """The action branch (also used unbound, as MA2MI's EMA latent target)."""
    return ActionBranch(self.stem_width, tuple(self.widths),
                        tuple(self.strides), name=name)

  @nn.nowrap
  def position_branch_module(self, grid: int):
    """The position branch, on the action branch's `grid` x `grid` cells."""
    return PositionBranch(dim=self.widths[-1], grid=grid,
                          depth=self.position_depth,
                          num_heads=self.position_heads,
                          mlp_ratio=self.position_mlp_ratio,
                          input_mode=self.position_input,
                          name="position_branch")


class Model(Branches):
  """MIACNet; `frames [B, T, H, W, C]` -> `(logits [B, num_classes], aux)`.

  aux: `action` and `position` features `[B, g, g, D]`, `attention`
  `[B, g1, g1, 1]`, `onset_idx`/`apex_idx` `[B]`, `apex_fallback` `[B]`
  (bool: the apex was estimated because no annotated one was given).
  `apex_index` `[B]` (int, -1 = none): the annotated apex for
  `apex="annotated"`, ignored otherwise.
  """
  num_classes: int
  fusion: str = "sum"  # sum | gated
  dropout: float = 0.5
  apex: str = "annotated"  # annotated | detrended | motion | middle
  apex_fallback: str = "detrended"  # estimate where no apex is annotated
  apex_topk: int = 2
  onset_jitter: int = 1
  use_position: bool = True  # False: action branch only (ablation)

  @property
  def batch_inputs(self) -> tuple[str, ...]:
    """Batch entries the trainer passes as keyword arguments."""
    return ("apex_index",) if self.apex == "annotated" else ()

  @nn.compact
  def __call__(self, frames: jnp.ndarray, *, train: bool,
               apex_index: jnp.ndarray | None = None):
    rng = self.make_rng("dropout") if train else None
    if self.apex != "annotated":
      apex_index = None
    onset_idx, apex_idx = select_onset_apex(
        frames, apex=self.apex, apex_topk=self.apex_topk,
        onset_jitter=self.onset_jitter, rng=rng, apex_index=apex_index,
        apex_fallback=self.apex_fallback)
    b = frames.shape[0]
    if self.apex != "annotated":
      fallback = jnp.zeros((b,), bool)
    elif apex_index is None:
      fallback = jnp.ones((b,), bool)
    else:
      fallback = jnp.asarray(apex_index).reshape(b) < 0
    onset = frames[:, 0]  # the position branch's only input
    diff = _take(frames, apex_idx) - _take(frames, onset_idx)
    a, attention = self.action_branch_module()(diff, train=train)
    p = self.position_branch_module(a.shape[1])(onset)
    if not self.use_position:
      p = jnp.zeros_like(p)
    if self.fusion == "sum":
      f = a + p
    elif self.fusion == "gated":
      f = a * nn.sigmoid(nn.Dense(a.shape[-1], name="fusion_gate")(p)) + p
    else:
      raise ValueError(f"fusion={self.fusion!r}: sum | gated")
    x = f.reshape(f.shape[0], -1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, name="head")(x)
    return logits, {"action": a, "position": p, "attention": attention,
                    "onset_idx": onset_idx, "apex_idx": apex_idx,
                    "apex_fallback": fallback}


def orthogonality(a: jnp.ndarray, p: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
  """mean over batch and grid cells of cos^2 between `a` and `p` `[B, g, g, D]`."""
  a = a.astype(jnp.float32)
  p = p.astype(jnp.float32)
  cos = (a * p).sum(-1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(p, axis=-1) + eps)
  return jnp.mean(cos**2)


def aux_losses(aux: dict[str, Any], batch: dict[str, jnp.ndarray], *,
               orth_weight: float = 0.0) -> dict[str, jnp.ndarray]:
  """Optional decoupling penalty `orth_weight * mean cos^2(A, P)`."""
  del batch
  if not orth_weight:
    return {}
  return {"orth": orth_weight * orthogonality(aux["action"], aux["position"])}

