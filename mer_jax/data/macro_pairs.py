"""MA2MI pretraining's data: frame triplets from macro-expression clips.

Data: the clips of `config.input.datasets`, read through their TFDS builders
(any macro corpus in the record contract: `synthetic_macro/s64`, `ck_plus/
7class_112`, `oulu_casia/6class_112`, ...), frames decoded on demand; labels
are ignored. Macro corpora come from builders only (`tfds_builders/`), never
from a renderer in this module; `config.pretrain.source` stays "tfds" (the
only value). Clips under `MIN_CLIP_FRAMES` frames (MMEW's macro images) are
left out and counted; none left is an error.

Sampling (`config.pretrain`, gaps in milliseconds, converted with each clip's
fps so a 200 fps corpus and a 30 fps one see the same time scale):
  k ~ U{1..round(max_gap_ms * fps / 1000)}   (<= ~160 ms: micro-like motion)
  m ~ U{1..round(future_gap_ms * fps / 1000)}
  t uniform such that t + k + m is in the clip; with `within_expression`,
  also t in [onset - k, offset] so most pairs contain facial action.
Inputs: position branch <- I[t], action branch <- I[t+k] - I[t]; target
I[t+k+m]. One random horizontal flip per sample, applied to all three frames.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import ml_collections
import numpy as np

from mer_jax.data import pipeline
from mer_jax.data import sources

log = logging.getLogger(__name__)

# A (t, t+k, t+k+m) triple with k, m >= 1 needs 3 frames; shorter clips
# (single images) are left out of "tfds" pretraining.
MIN_CLIP_FRAMES = 3


class MacroClip:
  """A clip: `num_frames`, `onset`, `offset`, `fps` and `frame(i)` -> uint8 HWC."""

  def __init__(self, get_frame: Callable[[int], np.ndarray], num_frames: int,
               onset: int, offset: int, fps: float):
    self.frame = get_frame
    self.num_frames = num_frames
    self.onset = onset
    self.offset = offset
    self.fps = fps


def load_clips(config: ml_collections.ConfigDict,
               settings: dict[str, Any]) -> list[MacroClip]:
  """The clips of `config.input.datasets` (labels ignored)."""
  if settings["source"] != "tfds":
    raise ValueError(
        f"config.pretrain.source={settings['source']!r}: macro clips are read "
        "through builders only; set source='tfds' and name them in "
        "config.input.datasets, e.g. ('synthetic_macro/s64',) or "
        "('ck_plus/7class_112',).")
  size = config.input.size
  corpus = sources.load_corpus(list(config.input.datasets),
                               config.input.data_dir or None,
                               auto_build=config.input.auto_build,
                               show_progress=config.progress)
  clips, stills = [], 0
  for c in corpus.clips:
    rec = corpus.record(c)
    encoded = rec["frames"]
    if len(encoded) < MIN_CLIP_FRAMES:   # e.g. MMEW's macro images
      stills += 1
      continue
    get = (lambda enc: lambda i: pipeline.resize_clip(
        sources.decode_frame(enc[i])[None], size)[0])(encoded)
    clips.append(MacroClip(get, len(encoded), int(rec["onset"]),
                           int(rec["offset"]), float(rec.get("fps", 30.0))))
  if stills:
    log.warning("%d of %d clips of %s have fewer than %d frames (no I[t], "
                "I[t+k], I[t+k+m] to draw): left out", stills,
                len(corpus.clips), list(config.input.datasets), MIN_CLIP_FRAMES)
  if not clips:
    raise ValueError(
        f"{list(config.input.datasets)}: every clip has fewer than "
        f"{MIN_CLIP_FRAMES} frames, so there is no motion to pretrain on "
        "(MMEW's macro part is one image per sample). MA2MI needs frame "
        "sequences: pretrain on oulu_casia or ck_plus "
        "(configs/ma2mi_oulu_casia.py, configs/ma2mi_ck_plus.py).")
  return clips


def sample_triplet(clip: MacroClip, rng: np.random.Generator,
                   settings: dict[str, Any]) -> tuple[int, int, int]:
  """Frame indices `(t, t + k, t + k + m)` inside the clip (see module doc)."""
  n = clip.num_frames
  k_max = max(1, int(round(settings["max_gap_ms"] * clip.fps / 1000.0)))
  m_max = max(1, int(round(settings["future_gap_ms"] * clip.fps / 1000.0)))
  k = int(rng.integers(1, k_max + 1))
  m = int(rng.integers(1, m_max + 1))
  if k + m > n - 1:  # a very short clip: shrink the gaps
    k, m = max(1, (n - 1) // 2), max(1, (n - 1) - max(1, (n - 1) // 2))
  hi = n - 1 - k - m
  lo = 0
  if settings["within_expression"]:
    lo = min(max(0, clip.onset - k), hi)
    hi = max(lo, min(hi, clip.offset))
  t = int(rng.integers(lo, hi + 1))
  return t, t + k, min(t + k + m, n - 1)


def _draw(clips: list[MacroClip], rng: np.random.Generator,
          settings: dict[str, Any]) -> tuple[MacroClip, tuple[int, int, int], bool]:
  """One sample's `(clip, frame indices, flip)`; the only use of the data rng."""
  clip = clips[int(rng.integers(len(clips)))]
  idx = sample_triplet(clip, rng, settings)
  flip = bool(settings["flip"] and rng.random() < 0.5)
  return clip, idx, flip


FRAMES = ("frame_t", "frame_tk", "frame_future")


def batch_shapes(config: ml_collections.ConfigDict,
                 batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """`{name: (shape, dtype)}` of `batches`, without reading data (AOT)."""
  b, _, h, w, c = pipeline.clip_shape(config.input, batch_size)
  return {k: ((b, h, w, c), np.dtype(np.float32)) for k in FRAMES}


def batches(clips: list[MacroClip], config: ml_collections.ConfigDict,
            settings: dict[str, Any], seed: int,
            start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Infinite `{"frame_t", "frame_tk", "frame_future"}` float32 `[B, H, W, C]` batches.

  Starts at batch `start_step` (0-based) of the stream of `seed`: batch `i` is
  a function of `(seed, i)` only, so a resumed run sees the batches of an
  uninterrupted one. Skipping draws the indices of the skipped batches
  without reading a frame (a few microseconds per sample).
  """
  rng = np.random.default_rng(seed)
  mean, std = np.float32(config.input.mean), np.float32(config.input.std)
  bsz = config.input.batch_size
  for _ in range(start_step * bsz):
    _draw(clips, rng, settings)
  while True:
    out = {k: [] for k in FRAMES}
    for _ in range(bsz):
      clip, idx, flip = _draw(clips, rng, settings)
      x = np.stack([clip.frame(i) for i in idx])  # [3, H, W, 3] uint8
      if config.input.channels == 1:
        x = pipeline.to_grey(x)
      if flip:
        x = x[:, :, ::-1]
      x = (x.astype(np.float32) / 255.0 - mean) / std
      for key, f in zip(out, x):
        out[key].append(f)
    yield {k: np.stack(v) for k, v in out.items()}
