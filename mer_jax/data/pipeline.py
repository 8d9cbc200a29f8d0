"""grain input pipelines: clip decoding, temporal sampling, augmentation, batching.

A batch is a dict of numpy arrays:
  frames: float32 `[B, T, H, W, C]`, normalised `(x / 255 - mean) / std`;
  label: int32 `[B]`; index: int32 `[B]` (position in the clip list);
  mask: float32 `[B]`, 1 for real samples, 0 for eval padding;
  apex_index: int32 `[B]`, the sampled frame `t` in `0..T-1` nearest to the
    record's annotated apex (`sampling.apex_index`), -1 when the apex is
    unknown (negative, no `apex` field, or `apex_annotated` False: a
    stand-in the builder filled in, e.g. every SMIC clip) or outside
    onset..offset, and -1 for eval padding. A record without
    `apex_annotated` (builds older than the field) keeps its apex;
  plus one entry per `config.input.targets` name (see `targets.py`),
  computed from the frames after augmentation (`AddTargets`).

Train: seeded shuffle, infinite repeat, per-example seeded augmentation,
drop remainder; batch `k` is a pure function of (seed, k), so a resumed run
sees the same batches. Eval: fixed order, last batch padded and masked so
each clip is scored exactly once.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import cv2
import grain
import ml_collections
import numpy as np

from mer_jax.data import dynamic_image  # noqa: F401  (registers the "dynamic_image" target)
from mer_jax.data import sampling
from mer_jax.data import sources
from mer_jax.data import targets as targets_lib
from mer_jax.data.sources import Clip, Corpus


def to_grey(clip: np.ndarray) -> np.ndarray:
  """RGB uint8 `[..., 3]` -> `[..., 1]` with PIL's 'L' integer formula."""
  c = clip.astype(np.uint32)
  grey = (c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16
  return grey.astype(np.uint8)[..., None]


def resize_clip(clip: np.ndarray, size: int) -> np.ndarray:
  """`[T, H, W, C]` -> `[T, size, size, C]` (area when shrinking)."""
  if clip.shape[1] == size and clip.shape[2] == size:
    return clip
  interp = cv2.INTER_AREA if clip.shape[1] > size else cv2.INTER_LINEAR
  out = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in clip])
  return out.reshape(clip.shape[0], size, size, clip.shape[-1])


class LoadClip:
  """Clip -> uint8 `[T, S, S, C]` clip + label (targets: `AddTargets`)."""

  def __init__(self, corpus: Corpus, clips: Sequence[Clip],
               cfg: ml_collections.ConfigDict):
    self.corpus = corpus
    self.clips = list(clips)
    self.num_frames = cfg.num_frames
    self.mode = cfg.temporal_sampling
    self.size = cfg.size
    self.channels = cfg.channels

  def __call__(self, i: int) -> dict[str, Any]:
    clip = self.clips[i]
    rec = self.corpus.record(clip)
    frames = rec["frames"]
    onset, offset = int(rec["onset"]), int(rec["offset"])
    plan = sampling.frame_plan(len(frames), onset, offset, self.num_frames,
                               self.mode)
    # A stand-in apex (builder filled in the middle frame) is no annotation;
    # `apex_annotated` absent (older builds) or None (the field missing from
    # the serialised record): trusted, as before the field existed.
    apex = int(rec["apex"]) if sources.has_annotated_apex(rec) else -1
    x = sampling.gather(lambda j: sources.decode_frame(frames[j]), plan)
    x = resize_clip(x, self.size)
    if self.channels == 1:
      x = to_grey(x)
    return {"frames": x, "label": np.int32(clip.label), "index": np.int32(i),
            "mask": np.float32(1.0),
            "apex_index": np.int32(sampling.apex_index(
                len(frames), onset, apex, offset, self.num_frames, self.mode))}


class AddTargets:
  """Adds one entry per `config.input.targets` name, from `frames` as they are.

  Runs after `Augment` (before `Normalize`), so a target is computed from the
  very frames the model sees: a flipped, rotated or shifted clip gets the
  dynamic image of the flipped, rotated or shifted frames. Without
  augmentation the frames are still the uint8 clip (official targets, bit for
  bit); after it they are float32 in [0, 255].
  """

  def __init__(self, names: Sequence[str]):
    self.fns = {t: targets_lib.get(t) for t in names}  # fail early on unknown names

  def __call__(self, ex: dict[str, Any]) -> dict[str, Any]:
    if not self.fns:
      return ex
    ex = dict(ex)
    for name, fn in self.fns.items():
      ex[name] = np.asarray(fn(ex["frames"]), np.float32)
    return ex


class Augment:
  """One random similarity transform, flip and photometric jitter per clip.

  The same parameters apply to every frame: the motion between frames, which
  is the micro-expression, must not be altered by augmentation.
  """

  def __init__(self, cfg: ml_collections.ConfigDict):
    self.flip = cfg.flip
    self.max_rotate = cfg.max_rotate_deg
    self.scale = tuple(cfg.scale)
    self.max_shift = cfg.max_shift
    self.brightness = cfg.brightness
    self.contrast = cfg.contrast

  def __call__(self, ex: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    x = ex["frames"]
    t, h, w, c = x.shape
    angle = rng.uniform(-self.max_rotate, self.max_rotate)
    scale = rng.uniform(*self.scale)
    shift = rng.uniform(-self.max_shift, self.max_shift, size=2) * (w, h)
    flip = self.flip and rng.random() < 0.5
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, scale)
    m[:, 2] += shift
    frames = [cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT101) for f in x]
    x = np.stack(frames).reshape(t, h, w, c)
    if flip:
      x = x[:, :, ::-1]
    gain = 1 + rng.uniform(-self.contrast, self.contrast)
    bias = 255 * rng.uniform(-self.brightness, self.brightness)
    mean = x.mean()
    x = np.clip((x.astype(np.float32) - mean) * gain + mean + bias, 0, 255)
    ex = dict(ex)
    ex["frames"] = x
    return ex


class Normalize:
  def __init__(self, cfg: ml_collections.ConfigDict):
    self.mean = np.float32(cfg.mean)
    self.std = np.float32(cfg.std)

  def __call__(self, ex: dict[str, Any]) -> dict[str, Any]:
    ex = dict(ex)
    ex["frames"] = (ex["frames"].astype(np.float32) / 255.0 - self.mean) / self.std
    return ex


def train_dataset(corpus: Corpus, clips: Sequence[Clip],
                  cfg: ml_collections.ConfigDict, batch_size: int, seed: int,
                  start_step: int = 0, shard_index: int = 0,
                  shard_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of training batches, starting at global batch `start_step`.

  With `shard_count` processes, process `shard_index` gets its own
  `batch_size // shard_count` consecutive rows of every global batch of
  `batch_size` (the global batch, and each row's augmentation, do not
  depend on the process count). Only those rows' clips are decoded.
  """
  if batch_size % shard_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by the "
                     f"{shard_count} processes.")
  ds = (grain.MapDataset.source(list(range(len(clips))))
        .seed(seed)
        .shuffle()
        .repeat(None)
        .map(LoadClip(corpus, clips, cfg)))
  if cfg.augment.enabled:
    ds = ds.random_map(Augment(cfg.augment))
  # Targets of the augmented frames (a flipped clip, a flipped dynamic image).
  ds = (ds.map(AddTargets(cfg.targets)).map(Normalize(cfg))
        .batch(batch_size // shard_count, drop_remainder=True))
  # Global batch k = local batches k*n .. k*n + n-1 (n processes): take ours.
  # Elements keep their global positions, so augmentation seeds agree.
  ds = ds[start_step * shard_count + shard_index::shard_count]
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.read_threads,
                                            prefetch_buffer_size=cfg.prefetch))
  if cfg.workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.workers))
  return iter(it)


def eval_batches(corpus: Corpus, clips: Sequence[Clip],
                 cfg: ml_collections.ConfigDict,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Every clip once, in order; the last batch is zero-padded with mask 0.

  Padding rows are zeros except `apex_index`, which is -1 (no apex).
  """
  ds = (grain.MapDataset.source(list(range(len(clips))))
        .map(LoadClip(corpus, clips, cfg))
        .map(AddTargets(cfg.targets))
        .map(Normalize(cfg)))
  it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.read_threads,
                                                 prefetch_buffer_size=cfg.prefetch)))
  buf = []
  for ex in it:
    buf.append(ex)
    if len(buf) == batch_size:
      yield _stack(buf)
      buf = []
  if buf:
    pad = {k: np.zeros_like(v) for k, v in buf[0].items()}
    pad["apex_index"] = np.int32(-1)
    yield _stack(buf + [pad] * (batch_size - len(buf)))


def clip_shape(cfg: ml_collections.ConfigDict, batch: int = 1) -> tuple[int, ...]:
  """`[B, T, H, W, C]` of the clips `cfg` (`config.input`) feeds a model."""
  return (batch, cfg.num_frames, cfg.size, cfg.size, cfg.channels)


def batch_shapes(cfg: ml_collections.ConfigDict,
                 batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """`{name: (shape, dtype)}` of the batches above, without reading data.

  For compiling ahead of time (`scripts/aot_compile.py`); target shapes come
  from running each target on a blank clip, so they cannot drift.
  """
  out = {"frames": (clip_shape(cfg, batch_size), np.dtype(np.float32)),
         "label": ((batch_size,), np.dtype(np.int32)),
         "index": ((batch_size,), np.dtype(np.int32)),
         "mask": ((batch_size,), np.dtype(np.float32)),
         "apex_index": ((batch_size,), np.dtype(np.int32))}
  blank = np.zeros(clip_shape(cfg)[1:], np.uint8)
  for name in cfg.targets:
    shape = np.asarray(targets_lib.get(name)(blank), np.float32).shape
    out[name] = ((batch_size, *shape), np.dtype(np.float32))
  return out


def _stack(examples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
