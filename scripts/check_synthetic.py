"""Learnability check for `synthetic_me`: motion features vs a single frame.

Leave-one-subject-out over the corpus' subjects, two numpy classifiers
(nearest class centroid, and multinomial logistic regression) on two inputs:

* motion: |apex - onset| of the grey frames, area-pooled to 16 x 16;
* single frame: the grey apex frame alone, area-pooled to 16 x 16.

A corpus that needs motion should give motion well above chance (20 %) and
a single frame near chance. Renders clips with `synth` directly (no TFDS),
~10 s at 64 px on one core.

  python scripts/check_synthetic.py [--seed 0] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tfds_builders.synthetic_me import synth  # pylint: disable=g-import-not-at-top,wrong-import-position

POOL = 16


def _grey_pool(frame: np.ndarray) -> np.ndarray:
  """`[H, W, 3]` uint8 -> `[POOL * POOL]` float32 grey, area-pooled."""
  g = frame.astype(np.float32).mean(-1)
  return cv2.resize(g, (POOL, POOL), interpolation=cv2.INTER_AREA).ravel()


def features(seed: int, size: int, clips_per_class: int = 6):
  """Returns motion `[N, D]`, single-frame `[N, D]`, labels `[N]`, subjects `[N]`."""
  motion, single, labels, subjects = [], [], [], []
  for s in range(len(synth.SUBJECTS)):
    for clip in synth.plan_subject(seed, s, clips_per_class):
      frames = synth.render_clip(seed, clip, size)
      apex = frames[clip.apex].astype(np.float32)
      onset = frames[clip.onset].astype(np.float32)
      motion.append(_grey_pool(np.abs(apex - onset)))
      single.append(_grey_pool(frames[clip.apex]))
      labels.append(clip.label)
      subjects.append(s)
  return (np.stack(motion), np.stack(single), np.array(labels),
          np.array(subjects))


def _standardise(train: np.ndarray, test: np.ndarray):
  mu, sd = train.mean(0), train.std(0) + 1e-6
  return (train - mu) / sd, (test - mu) / sd


def nearest_centroid(xtr, ytr, xte, num_classes):
  xtr, xte = _standardise(xtr, xte)
  cents = np.stack([xtr[ytr == k].mean(0) for k in range(num_classes)])
  d = ((xte[:, None, :] - cents[None]) ** 2).sum(-1)
  return d.argmin(1)


def logistic(xtr, ytr, xte, num_classes, l2=1e-2, steps=300, lr=0.5):
  """Multinomial logistic regression, full-batch gradient descent."""
  xtr, xte = _standardise(xtr, xte)
  w = np.zeros((xtr.shape[1], num_classes))
  b = np.zeros(num_classes)
  onehot = np.eye(num_classes)[ytr]
  for _ in range(steps):
    z = xtr @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - onehot) / len(xtr)
    w -= lr * (xtr.T @ g + l2 * w)
    b -= lr * g.sum(0)
  return (xte @ w + b).argmax(1)


def loso_accuracy(x, y, subjects, classifier) -> tuple[float, list[float]]:
  """Pooled LOSO accuracy and the per-fold accuracies."""
  correct, per_fold = 0, []
  for s in np.unique(subjects):
    test = subjects == s
    pred = classifier(x[~test], y[~test], x[test], len(synth.CLASS_NAMES))
    correct += (pred == y[test]).sum()
    per_fold.append(float((pred == y[test]).mean()))
  return correct / len(y), per_fold


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--size", type=int, default=64)
  args = ap.parse_args()
  t0 = time.time()
  motion, single, y, subj = features(args.seed, args.size)
  print("rendered %d clips of %d subjects in %.1f s" % (
      len(y), len(np.unique(subj)), time.time() - t0))
  print("chance: %.1f %%" % (100.0 / len(synth.CLASS_NAMES)))
  for feat_name, x in (("motion |apex-onset|", motion), ("single apex frame", single)):
    for clf_name, clf in (("nearest centroid", nearest_centroid),
                          ("logistic regression", logistic)):
      acc, folds = loso_accuracy(x, y, subj, clf)
      print("%-20s %-20s LOSO acc %5.1f %%  (folds %s)" % (
          feat_name, clf_name, 100 * acc,
          " ".join("%.0f" % (100 * f) for f in folds)))


if __name__ == "__main__":
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))
