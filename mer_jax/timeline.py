"""Per-window predictions over a long video: a CSV and a timeline figure.

Input is the result dict of `scripts/predict.py` (`clips` rows with
`onset`, `offset`, `face`, `why`, `probs`), the per-frame face presence of
the tracker and, optionally, aligned face thumbnails of some windows.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import numpy as np


def write_csv(result: dict[str, Any], path: str) -> None:
  """One row per window: span, time, face, why, prediction, `p_<class>`."""
  names = result["class_names"]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["window", "onset", "offset", "start_s", "end_s", "face", "why",
                "pred", "confidence"] + [f"p_{n}" for n in names])
    for i, c in enumerate(result["clips"]):
      probs = c.get("probs") or {}
      w.writerow([i, c["onset"], c["offset"], c.get("start_s"), c.get("end_s"),
                  int(bool(c["face"])), c.get("why", ""), c.get("pred") or "",
                  c.get("confidence", "")] +
                 [probs.get(n, "") for n in names])


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
  """`[(start, end_exclusive)]` runs of True in a bool `[N]` array."""
  m = np.concatenate([[False], mask.astype(bool), [False]])
  d = np.flatnonzero(np.diff(m.astype(np.int8)))
  return list(zip(d[::2], d[1::2]))


def plot(result: dict[str, Any], face_present: np.ndarray, path: str, *,
         thumbs: Sequence[tuple[int, np.ndarray]] = (), title: str = "") -> None:
  """Class probabilities per window over time, frames without a face shaded.

  Args:
    result: predict.py's result (`clips`, `class_names`, `fps`).
    face_present: bool `[N]`, the tracker's per-frame face presence.
    path: the PNG to write.
    thumbs: `[(window index, uint8 [S, S, C] aligned first frame)]` shown
      above the curves at their windows' times.
    title: figure title.
  """
  # A bare Figure on an Agg canvas: no pyplot, no global backend change.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  fps = result.get("fps") or 0.0
  scale = (1.0 / fps) if fps else 1.0
  unit = "time (s)" if fps else "frame"
  names = result["class_names"]
  clips = result["clips"]
  n = len(face_present)
  fig = Figure(figsize=(10, 4.2 if thumbs else 3.2), dpi=100)
  FigureCanvasAgg(fig)
  if thumbs:
    gs = fig.add_gridspec(2, 1, height_ratios=(1, 2.2), hspace=0.05)
    ax_t, ax = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
  else:
    ax_t, ax = None, fig.add_subplot(1, 1, 1)
  for a, b in _spans(~np.asarray(face_present, bool)):
    ax.axvspan(a * scale, b * scale, color="0.85", lw=0,
               label="no face" if a == _spans(~np.asarray(face_present, bool))[0][0] else None)
  centre = np.array([(c["onset"] + c["offset"] + 1) / 2 for c in clips]) * scale
  for k, name in enumerate(names):
    y = np.array([c["probs"][name] if c["face"] else np.nan for c in clips])
    ax.plot(centre, y, "-o", ms=2.5, lw=1.3, color=f"C{k}", label=name)
  ax.set_xlim(0, n * scale)
  ax.set_ylim(0, 1)
  ax.set_xlabel(unit)
  ax.set_ylabel("probability (window)")
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
  if ax_t is not None:
    ax_t.set_xlim(0, n * scale)
    ax_t.set_ylim(0, 1)
    ax_t.axis("off")
    ax_t.text(-0.01, 0.5, "aligned\nwindow\nstarts", transform=ax_t.transAxes,
              ha="right", va="center", fontsize=7)
    width = n * scale / max(len(thumbs), 1) * 0.9
    for i, img in thumbs:
      c = clips[i]
      x = (c["onset"] + c["offset"] + 1) / 2 * scale
      img = np.asarray(img)
      ax_t.imshow(img[..., 0] if img.shape[-1] == 1 else img,
                  cmap="gray" if img.shape[-1] == 1 else None,
                  extent=(x - width / 2, x + width / 2, 0.02, 0.98), aspect="auto")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.subplots_adjust(left=0.07, right=0.82, bottom=0.13, top=0.92)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
