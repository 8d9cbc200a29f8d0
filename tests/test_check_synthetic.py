"""scripts/check_synthetic.py: the single-frame and motion controls, tiny size."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scripts"))
import check_synthetic as cs  # noqa: E402  pylint: disable=wrong-import-position


def _primal_logistic(xtr, ytr, xte, num_classes=5, l2=1e-2, steps=300, lr=0.5):
  """The textbook form (weights in feature space) the script's dual form must match."""
  xtr, xte = cs.standardise(xtr.astype(np.float64), xte.astype(np.float64))
  w, b = np.zeros((xtr.shape[1], num_classes)), np.zeros(num_classes)
  onehot = np.eye(num_classes)[ytr]
  for _ in range(steps):
    g = cs.softmax_xent_grad(xtr @ w + b, onehot)
    w -= lr * (xtr.T @ g + l2 * w)
    b -= lr * g.sum(0)
  return xte @ w + b


def test_logistic_matches_primal_gradient_descent():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(40, 90)), rng.integers(0, 5, 40)
  xte = rng.normal(size=(7, 90))
  np.testing.assert_array_equal(cs.logistic(x, y, xte),
                                _primal_logistic(x, y, xte).argmax(1))


@pytest.fixture(scope="module")
def tiny_frames():
  """4 subjects x 2 clips per class at 32 px, rendered once."""
  return cs.frames_from_render(0, 32, num_subjects=4, clips_per_class=2)


def test_controls_tiny(tiny_frames):
  """Rendered corpus, 4 subjects x 2 clips per class at 32 px; a 20-step CNN.

  Every control reports one pooled LOSO accuracy and one accuracy per fold;
  motion beats every single-frame control (by construction of the corpus),
  and the onset frame, which holds no expression, is at most chance-like.
  """
  onset, apex, labels, subjects = tiny_frames
  assert apex.shape == (40, 32, 32) and onset.shape == apex.shape
  wanted = ("apex HOG", "onset HOG", "|apex-onset| HOG", "apex CNN")
  res = cs.run_controls(onset, apex, labels, subjects, seed=0, cnn_steps=20,
                        controls=wanted)
  assert set(res) == set(wanted) and set(cs.SINGLE_FRAME) <= set(wanted)
  assert 0.0 <= res["apex CNN"]["train_accuracy"] <= 1.0
  for r in res.values():
    assert len(r["folds"]) == 4
    assert r["accuracy"] == pytest.approx(np.mean(r["folds"]))  # equal folds
  motion = res["|apex-onset| HOG"]["accuracy"]
  assert motion >= 0.5, res
  for control in cs.SINGLE_FRAME:
    assert res[control]["accuracy"] < motion, (control, res)
  assert res["onset HOG"]["accuracy"] <= 0.35, res


def test_shuffled_labels_control_is_at_chance(tiny_frames):
  """Sanity of the LOSO loop: motion features with permuted labels are not
  learnable (guards against a leak of the test fold into training)."""
  onset, apex, labels, subjects = tiny_frames
  x = np.stack([cs.hog(np.abs(a - o)) for a, o in zip(apex, onset)])
  perm = np.random.default_rng(1).permutation(labels)
  acc, _ = cs.loso(x, perm, subjects, cs.logistic)
  assert acc <= 0.4
