"""Pictures: confusion matrix, dynamic-image grid, MA2MI's loss curves and frames.

All drawn on a bare matplotlib Figure with an Agg canvas (no pyplot, so the
caller's backend, e.g. inline plots in a notebook, is left alone).

`dynamic_image_grid` draws one row per clip and returns the picture as a
uint8 RGB array, which the trainer both saves as
`folds/<subject>/dynamic_images.png` and writes to TensorBoard, so the two
are the same pixels. `future_frames_grid` is MA2MI pretraining's TensorBoard
image, `plot_losses` its `loss_curve.png`; `plot_confusion` the run's
`confusion.png`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

# Layout, in inches at DPI: every panel is PANEL x PANEL, each row has a
# TITLE band above it, the figure a HEADER band on top (title, column names).
DPI = 100
PANEL = 1.0
TITLE = 0.3
HEADER = 0.45


def _figure(**kwargs):
  """A bare matplotlib Figure on its own Agg canvas: `(figure, canvas)`."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(**kwargs)
  return fig, FigureCanvasAgg(fig)


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
  frames = np.asarray(frames)
  n, t = frames.shape[:2]
  with_target = target is not None
  cols = t + 1 + int(with_target)
  h_px, w_px = grid_size(n, t, with_target)
  fig, canvas = _figure(figsize=(w_px / DPI, h_px / DPI), dpi=DPI)
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
  """Writes uint8 `[H, W, 3]` RGB or `[H, W]` grey to `path` (atomically)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (a matplotlib dependency)
  tmp = path + ".tmp.png"
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(tmp)  # mode RGB / L
  os.replace(tmp, path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str,
                   title: str) -> None:
  """Writes a row-normalised confusion matrix with counts as a PNG."""
  cm = np.asarray(cm)
  rows = cm.sum(axis=1, keepdims=True)
  frac = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
  k = len(class_names)
  fig, _ = _figure(figsize=(1.2 * k + 2.5, 1.1 * k + 2))
  ax = fig.subplots()
  im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
  ax.set_xticks(range(k), class_names, rotation=45, ha="right")
  ax.set_yticks(range(k), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  for i in range(k):
    for j in range(k):
      ax.text(j, i, f"{cm[i, j]}\n{frac[i, j]:.0%}", ha="center", va="center",
              color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046, label="row fraction (recall)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def _to_uint8(x: np.ndarray, mean: float, std: float) -> np.ndarray:
  x = (np.asarray(x, np.float32) * std + mean) * 255.0
  x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
  return np.repeat(x, 3, -1) if x.shape[-1] == 1 else x


def future_frames_grid(batch: dict[str, np.ndarray], residual: np.ndarray,
                       mean: Any, std: Any, n: int) -> np.ndarray:
  """uint8 `[n*H, 5*W, 3]`: I[t] | true future | predicted | true change | predicted change.

  `batch`: MA2MI's `frame_t`, `frame_future` `[B, H, W, C]` normalised with
  `(mean, std)` (`config.input`); `residual`: the predicted change
  `[B, H, W, C]`. Changes are shown at a common gain (mid grey = no change),
  per row.
  """
  rows = []
  for i in range(min(n, len(residual))):
    t, fut = batch["frame_t"][i], batch["frame_future"][i]
    change, pred = fut - t, np.asarray(residual[i])
    gain = 0.5 / max(float(np.abs(change).max()), 1e-6)
    show = lambda d: np.clip(np.rint((0.5 + gain * d) * 255), 0, 255).astype(np.uint8)
    ch = lambda d: np.repeat(show(d), 3, -1) if d.shape[-1] == 1 else show(d)
    rows.append(np.concatenate([
        _to_uint8(t, mean, std), _to_uint8(fut, mean, std),
        _to_uint8(t + pred, mean, std), ch(change), ch(pred)], axis=1))
  return np.concatenate(rows, axis=0)


def plot_losses(history: list[dict[str, float]], path: str) -> None:
  """MA2MI's loss curves: every `loss*` entry of `history` against its "step"."""
  fig, _ = _figure(figsize=(6, 4))
  ax = fig.subplots()
  steps = [h["step"] for h in history]
  for key in sorted(k for k in history[0] if k.startswith("loss")):
    ax.plot(steps, [h[key] for h in history], label=key)
  ax.axhline(1.0, color="grey", lw=0.5, ls="--")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (pixel: 1 = predicting no change)")
  ax.set_title("MA2MI pretraining")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
