"""The record contract shared by every mer-jax builder.

Every corpus (micro or macro, real or synthetic) is written with the same
features, so the input pipeline and trainer never depend on the corpus:

| feature        | type                          | meaning                                        |
|----------------|-------------------------------|------------------------------------------------|
| `frames`       | Sequence(Image png) `[T,H,W,3]` uint8 | aligned face crops, all frames of the clip |
| `label`        | int64                          | class index in the builder config's protocol, -1 = not in it |
| `emotion`      | text                           | the corpus' own emotion string, verbatim       |
| `subject`      | text                           | `<dataset>/<subject>` (namespaced, LOSO unit)  |
| `sample_id`    | text                           | `<dataset>/<subject>/<clip>`, unique           |
| `onset`/`apex`/`offset` | int32                 | indices into `frames`                          |
| `apex_annotated` | bool                         | True: `apex` is the corpus' annotated (or, for synthetic_me, generated) apex; False: `apex` is a stand-in (the middle index) |
| `action_units` | text                           | the corpus' AU string, verbatim ('' if none)   |
| `fps`          | float32                        | frame rate of the source video                 |

`apex_annotated` is False where a builder had to fill the apex in: an
annotation row without a usable apex ("apex missing -> middle" in
`build_report.json`; CASME II, SAMM, CAS(ME)^2, CAS(ME)^3) and every SMIC
clip (the corpus has no apex). It is True for annotated apexes, for CK+ and
Oulu-CASIA (a sequence ends at its peak frame, which is its apex), for
MMEW's macro images (one frame, the expression itself) and for
synthetic_me (the generated peak). Readers treat a record WITHOUT the field
(builds made before it existed, builder versions 1.0.0) as annotated, as
before; the input pipeline turns a False into `apex_index = -1`.

Splits: one split per subject, named `split_name(subject)`; a LOSO fold is
"every split but one". TFDS text comes back as `bytes` from data sources.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow_datasets as tfds

FEATURE_KEYS = ("frames", "label", "emotion", "subject", "sample_id", "onset",
                "apex", "apex_annotated", "offset", "action_units", "fps")


def me_features(size: int) -> tfds.features.FeaturesDict:
  """The shared feature schema; frames are square `size` x `size` RGB."""
  return tfds.features.FeaturesDict({
      "frames": tfds.features.Sequence(
          tfds.features.Image(shape=(size, size, 3), encoding_format="png")),
      "label": tfds.features.Scalar(np.int64),
      "emotion": tfds.features.Text(),
      "subject": tfds.features.Text(),
      "sample_id": tfds.features.Text(),
      "onset": tfds.features.Scalar(np.int32),
      "apex": tfds.features.Scalar(np.int32),
      "apex_annotated": tfds.features.Scalar(np.bool_),
      "offset": tfds.features.Scalar(np.int32),
      "action_units": tfds.features.Text(),
      "fps": tfds.features.Scalar(np.float32),
  })


def split_name(subject: str) -> str:
  """A TFDS-safe split name for a (namespaced) subject, e.g. 'casme2/sub01' -> 'sub01'."""
  local = subject.split("/", 1)[-1]
  name = re.sub(r"[^0-9A-Za-z_]", "_", local)
  if not name or name[0].isdigit():
    name = "s" + name
  return name


def encode_png(frame: np.ndarray) -> bytes:
  """PNG bytes of one uint8 frame: RGB `[H, W, 3]` (the schema's encoding) or grey `[H, W]`."""
  import cv2  # pylint: disable=g-import-not-at-top
  frame = np.asarray(frame)
  bgr = frame[..., ::-1] if frame.ndim == 3 else frame   # OpenCV writes BGR
  ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
  if not ok:
    raise ValueError("cv2.imencode failed for a frame of shape %s" % (frame.shape,))
  return buf.tobytes()
