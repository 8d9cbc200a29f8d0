"""Faces over time in raw video: detection on a stride of frames, a tracker.

`track_face` runs a detector (dlib HOG, `face_align.HogDetector`) on every
`detect_every`-th frame plus any frames the caller needs (each window's first
frame), follows ONE face from detection to detection (nearest box centre,
gated by the face width), smooths its 5 landmarks over neighbouring
detections and interpolates them in between. The result says, per frame,
whether the face is there and which track segment it belongs to, so a
caller can report a window without a face, or one that loses it, instead of
failing.

Alignment stays the builders' (`tfds_builders.face_align`): one similarity
transform per clip from the landmarks on the clip's first frame. On a frame
where the detector found the tracked face these are the raw landmarks, so
the transform is exactly the builders'; the smoothed track only fills in a
frame the detector missed between two hits.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

from tfds_builders import face_align


@dataclasses.dataclass
class Track:
  """One followed face over `N` frames.

  Attributes:
    landmarks: float64 `[N, 5, 2]` smoothed 5-point landmarks; NaN where the
      face is not tracked.
    segment: int `[N]`: which uninterrupted stretch of the track a frame is in
      (-1: no face). A window is usable when all its frames share one segment.
    detections: `{frame: face_align.Detection}` of the tracked face on the
      detection frames where it was found (raw, unsmoothed landmarks).
    searched: the detection frames, in order.
    reasons: `{frame: why}` for detection frames without the tracked face.
    faces_seen: `{frame: number of faces >= min_face_score}`.
  """
  landmarks: np.ndarray
  segment: np.ndarray
  detections: dict[int, face_align.Detection]
  searched: list[int]
  reasons: dict[int, str]
  faces_seen: dict[int, int]

  @property
  def present(self) -> np.ndarray:
    return self.segment >= 0

  def window_status(self, onset: int, offset: int) -> tuple[bool, str]:
    """`(usable, why)` for frames `onset..offset` (inclusive)."""
    seg = self.segment[onset:offset + 1]
    if seg[0] < 0:
      return False, f"no face on frame {onset} ({self._why_near(onset)})"
    bad = np.flatnonzero(seg != seg[0])
    if bad.size:
      j = onset + int(bad[0])
      if seg[bad[0]] < 0:
        return False, (f"face lost after frame {j - 1} ({self._why_near(j)})")
      return False, f"the tracked face jumps at frame {j} (another face?)"
    return True, ""

  def _why_near(self, frame: int) -> str:
    later = [f for f in self.searched if f >= frame and f in self.reasons]
    if later:
      f = later[0]
      return f"frame {f}: {self.reasons[f]}"
    return "no detection nearby"

  def frame_landmarks(self, frame: int) -> tuple[np.ndarray, str]:
    """Landmarks `[5, 2]` for aligning on `frame`, and their source.

    The raw detection when the detector found the face on this frame
    ("detected": exactly the builders' transform), else the smoothed track
    ("tracked").
    """
    if frame in self.detections:
      return self.detections[frame].landmarks, "detected"
    if self.segment[frame] < 0:
      raise face_align.FaceError(f"no face tracked on frame {frame}")
    return self.landmarks[frame], "tracked"


def detection_frames(n: int, detect_every: int, extra: Iterable[int] = ()) -> list[int]:
  """Frames to run the detector on: every `detect_every`-th, the last, `extra`."""
  return sorted({*range(0, n, max(int(detect_every), 1)), n - 1,
                 *(int(e) for e in extra if 0 <= int(e) < n)})


def track_face(frames: Sequence[np.ndarray],
               detect: Callable[[np.ndarray], list[face_align.Detection]],
               *, detect_every: int = 6, extra_frames: Iterable[int] = (),
               min_face_score: float = 0.5, largest_face: bool = False,
               face_index: int | None = None, gate: float = 0.5,
               max_missed: int = 1, smooth: bool = True,
               progress: Callable[[Iterable[int]], Iterable[int]] | None = None
               ) -> Track:
  """Follows one face through `frames` (uint8 `[N, H, W, 3]`).

  The face is chosen with `pick_face` when a track starts; from then on the
  tracker holds it: on each detection frame the detection nearest to the
  last position, within `gate` face widths, continues the track (another
  face becoming larger does not steal it). Up to `max_missed` consecutive
  detection frames without it are bridged when the face is found again
  near where it was (HOG misses a frame now and then); after more, the track
  ends and the next face found starts a new segment, chosen again by the
  same rule.

  Landmarks are smoothed over neighbouring detections of a segment
  (weights 1-2-1) and interpolated linearly between detection frames.
  Frames after the last hit and before a miss count as without a face: the
  face left somewhere in between.

  Raises:
    SeveralFacesError: a track would start on a frame with several faces
      and neither `largest_face` nor `face_index` says which.
  """
  n = len(frames)
  searched = detection_frames(n, detect_every, extra_frames)
  hits: dict[int, face_align.Detection] = {}
  reasons: dict[int, str] = {}
  faces_seen: dict[int, int] = {}
  seg_of: dict[int, int] = {}
  current, last, missed, nseg = None, None, [], 0
  for f in (progress(searched) if progress else searched):
    dets = detect(frames[f])
    faces_seen[f] = sum(d.score >= min_face_score for d in dets)
    found = None
    if last is not None:
      near = [d for d in dets
              if np.linalg.norm(d.centre - last.centre) <= gate * last.width * (1 + len(missed))]
      found = min(near, key=lambda d: np.linalg.norm(d.centre - last.centre)) if near else None
      if found is None:
        missed.append(f)
        reasons[f] = ("no face detected" if not dets else
                      f"{len(dets)} face(s) detected, none where the tracked face was")
        if len(missed) <= max_missed:
          continue
        # The track ends; a face on this frame may start the next one.
        current, last, missed = None, None, []
      else:
        missed = []
    if last is None:
      found = face_align.pick_face(dets, min_face_score=min_face_score,
                                   largest_face=largest_face,
                                   face_index=face_index, where=f" on frame {f}")
      if found is None:
        reasons.setdefault(f, "no face detected" if not dets else
                           f"face_index {face_index}: only {faces_seen[f]} face(s)")
        continue
      reasons.pop(f, None)
      current, nseg = nseg, nseg + 1
    hits[f] = found
    seg_of[f] = current
    last = found

  landmarks = np.full((n, 5, 2), np.nan)
  segment = np.full(n, -1, np.int64)
  hit_frames = sorted(hits)
  raw = {f: hits[f].landmarks for f in hit_frames}
  smoothed = dict(raw)
  if smooth:
    for i, f in enumerate(hit_frames):
      acc, w = 2 * raw[f], 2.0
      for j in (i - 1, i + 1):
        if 0 <= j < len(hit_frames) and seg_of[hit_frames[j]] == seg_of[f]:
          acc, w = acc + raw[hit_frames[j]], w + 1
      smoothed[f] = acc / w
  for a, b in zip(hit_frames, hit_frames[1:] + [None]):
    landmarks[a], segment[a] = smoothed[a], seg_of[a]
    if b is not None and seg_of[b] == seg_of[a]:
      t = (np.arange(a + 1, b) - a)[:, None, None] / (b - a)
      landmarks[a + 1:b] = (1 - t) * smoothed[a] + t * smoothed[b]
      segment[a + 1:b] = seg_of[a]
  return Track(landmarks=landmarks, segment=segment, detections=hits,
               searched=searched, reasons=reasons, faces_seen=faces_seen)
