"""Dynamic-image previews: input frames, target and constructed dynamic image.

`dynamic_image_grid` draws one row per clip (matplotlib, Agg) and returns the
picture as a uint8 RGB array, which the trainer both saves as
`folds/<subject>/dynamic_images.png` and writes to TensorBoard, so the two
are the same pixels.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

# Layout, in inches at DPI: every panel is PANEL x PANEL, each row has a
# TITLE band above it, the figure a HEADER band on top (title, column names).
DPI = 100
PANEL = 1.0
TITLE = 0.3
HEADER = 0.45


def grid_size(num_rows: int, num_frames: int, with_target: bool = True) -> tuple[int, int]:
  """`(height, width)` in pixels of `dynamic_image_grid`'s picture."""
  cols = num_frames + 1 + int(with_target)
  return (int(round((HEADER + num_rows * (PANEL + TITLE)) * DPI)),
          int(round(cols * PANEL * DPI)))


def _display_range(clip: np.ndarray) -> np.ndarray:
  """`[T, H, W, C]` normalised frames -> `[0, 1]`, stretched over the clip."""
  clip = np.asarray(clip, np.float32)
  lo, hi = float(clip.min()), float(clip.max())
  return (clip - lo) / (hi - lo) if hi > lo else np.full_like(clip, 0.5)


def dynamic_image_grid(frames: np.ndarray, target: np.ndarray | None,
                       predicted: np.ndarray, labels: Sequence[int],
                       pred_labels: Sequence[int], class_names: Sequence[str],
                       row_names: Sequence[str] | None = None,
                       title: str = "") -> np.ndarray:
  """One row per clip: its T frames | target dynamic image | constructed one.

  Args:
    frames: `[N, T, H, W, C]` model input (any affine normalisation; each clip
      is stretched to its own min..max for display), C = 1 (grey) or 3 (RGB).
    target: `[N, H, W]` target dynamic image in [0, 1], or None (no column).
    predicted: `[N, H', W']` the model's dynamic image in [0, 1].
    labels, pred_labels: `[N]` true and predicted class indices.
    class_names: names of the class indices.
    row_names: `[N]` (e.g. sample ids) to start each row's title with.
    title: the figure's title (top left).
    Each row's title: name, true and predicted class, and (with a target of
    the same shape) the mean squared error of the constructed dynamic image.
    Dynamic images are drawn on the fixed [0, 1] grey scale, so target and
    constructed one compare directly.

  Returns:
    uint8 `[height, width, 3]` RGB, `(height, width) = grid_size(N, T,
    target is not None)`.
  """
  # A bare Figure on an Agg canvas: no pyplot, so the caller's matplotlib
  # backend (e.g. inline plots in a notebook) is left alone.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  frames = np.asarray(frames)
  n, t = frames.shape[:2]
  with_target = target is not None
  cols = t + 1 + int(with_target)
  h_px, w_px = grid_size(n, t, with_target)
  fig = Figure(figsize=(w_px / DPI, h_px / DPI), dpi=DPI)
  canvas = FigureCanvasAgg(fig)
  fig_h = HEADER + n * (PANEL + TITLE)
  fig_w = cols * PANEL
  pad = 0.03  # inches of white between panels
  heads = [f"frame {j + 1}" for j in range(t)] + (["target DI"] if with_target else []) + [
      "constructed DI"]
  for i in range(n):
    clip = _display_range(frames[i])
    grey = clip.shape[-1] == 1
    panels = [c[..., 0] if grey else c for c in clip]
    if with_target:
      panels.append(np.asarray(target[i], np.float32))
    panels.append(np.asarray(predicted[i], np.float32))
    top = fig_h - HEADER - i * (PANEL + TITLE) - TITLE  # panel top, inches
    for j, img in enumerate(panels):
      ax = fig.add_axes(((j * PANEL + pad) / fig_w, (top - PANEL + pad) / fig_h,
                         (PANEL - 2 * pad) / fig_w, (PANEL - 2 * pad) / fig_h))
      kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if img.ndim == 2 else {}
      ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest", **kw)
      ax.set_axis_off()
    y, p = int(labels[i]), int(pred_labels[i])
    name = f"{row_names[i]}: " if row_names is not None else ""
    mark = "" if y == p else "  (wrong)"
    err = ""
    if with_target and np.shape(target[i]) == np.shape(predicted[i]):
      mse = float(np.mean(np.square(panels[-1] - panels[-2])))
      err = f"; DI mse {mse:.4f}"
    fig.text(0.05 / fig_w, (top + 0.06) / fig_h,
             f"{name}true {class_names[y]}, pred {class_names[p]}{mark}{err}",
             fontsize=8, va="bottom", ha="left",
             color="black" if y == p else "firebrick")
  for j, head in enumerate(heads):
    fig.text((j + 0.5) * PANEL / fig_w, (fig_h - HEADER + 0.04) / fig_h, head,
             fontsize=7, va="bottom", ha="center")
  if title:
    fig.text(0.05 / fig_w, 1 - 0.03 / fig_h, title, fontsize=8, va="top",
             ha="left", weight="bold")
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(image: np.ndarray, path: str) -> None:
  """Writes uint8 `[H, W, 3]` RGB to `path` (atomically)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (a matplotlib dependency)
  tmp = path + ".tmp.png"
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(np.ascontiguousarray(image, np.uint8), "RGB").save(tmp)
  os.replace(tmp, path)
