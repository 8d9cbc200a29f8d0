"""UF1/UAR/accuracy against hand-computed cases."""

import numpy as np
import pytest

from mer_jax import evaluation
from mer_jax import plots


def test_scores_hand_computed():
  # 3 classes. labels/preds:
  #   class 0: 2 samples, both right            -> TP=2, FN=0, FP=1 (a 1 predicted 0)
  #   class 1: 3 samples, 1 right, 1->0, 1->2   -> TP=1, FN=2, FP=0
  #   class 2: 1 sample, right                  -> TP=1, FN=0, FP=1
  labels = [0, 0, 1, 1, 1, 2]
  preds = [0, 0, 1, 0, 2, 2]
  s = evaluation.scores(labels, preds, 3)
  f1 = [2 * 2 / (4 + 1 + 0), 2 * 1 / (2 + 0 + 2), 2 * 1 / (2 + 1 + 0)]
  rec = [1.0, 1 / 3, 1.0]
  assert s["uf1"] == pytest.approx(np.mean(f1))
  assert s["uar"] == pytest.approx(np.mean(rec))
  assert s["accuracy"] == pytest.approx(4 / 6)
  assert s["n"] == 6


def test_class_absent_from_fold_is_left_out_like_megc():
  # Class 2 has no ground truth here but is predicted once: it adds an FP to
  # nobody's recall and is excluded from both means (MEGC: recall undefined).
  labels = [0, 0, 1, 1]
  preds = [0, 2, 1, 1]
  s = evaluation.scores(labels, preds, 3)
  f1_0 = 2 * 1 / (2 * 1 + 0 + 1)
  f1_1 = 1.0
  assert s["uf1"] == pytest.approx((f1_0 + f1_1) / 2)
  assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)


def test_pooled_differs_from_mean_of_folds():
  folds = [
      {"subject": "a", "labels": [0, 0, 0], "preds": [0, 0, 0]},
      {"subject": "b", "labels": [1], "preds": [0]},
  ]
  out = evaluation.summarize_folds(folds, 2)
  # Pooled: class 0 TP=3 FP=1 -> F1 6/7, recall 1; class 1 TP=0 -> F1 0, recall 0.
  assert out["uf1"] == pytest.approx((6 / 7 + 0) / 2)
  assert out["uar"] == pytest.approx(0.5)
  assert out["accuracy"] == pytest.approx(0.75)
  assert [f["uf1"] for f in out["per_fold"]] == [1.0, 0.0]
  assert out["confusion"] == [[3, 0], [1, 0]]


def test_rejects_out_of_range():
  with pytest.raises(ValueError, match="outside"):
    evaluation.scores([0, 3], [0, 1], 3)


def test_confusion_png(tmp_path):
  p = tmp_path / "cm.png"
  plots.plot_confusion(np.array([[3, 1], [0, 2]]), ["a", "b"], str(p), "t")
  assert p.read_bytes()[:4] == b"\x89PNG"


def test_figures_leave_the_matplotlib_backend_alone(tmp_path):
  """Notebooks keep inline plots after training (no global matplotlib.use)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  before = matplotlib.get_backend()
  matplotlib.use("svg")
  try:
    plots.plot_confusion(np.eye(2, dtype=int), ["a", "b"],
                              str(tmp_path / "cm.png"), "t")
    img = plots.dynamic_image_grid(
        np.zeros((1, 2, 8, 8, 1)), np.zeros((1, 8, 8)), np.ones((1, 8, 8)),
        labels=[0], pred_labels=[1], class_names=["a", "b"])
    assert img.dtype == np.uint8 and img.ndim == 3
    assert matplotlib.get_backend() == "svg"
  finally:
    matplotlib.use(before)


def test_per_dataset_scores_of_a_composite():
  """Each dataset pooled over folds; the datasets together give the overall n."""
  folds = [
      {"subject": "smic/s1", "sample_ids": ["smic/s1/a", "smic/s1/b"],
       "labels": [0, 1], "preds": [0, 1]},
      {"subject": "casme2/sub01", "sample_ids": ["casme2/sub01/x", "casme2/sub01/y",
                                                 "casme2/sub01/z"],
       "labels": [0, 1, 2], "preds": [1, 1, 2]},
      {"subject": "casme2/sub02", "sample_ids": ["casme2/sub02/w"],
       "labels": [0], "preds": [0]},
  ]
  per = evaluation.per_dataset(folds, 3)
  assert list(per) == ["smic", "casme2"]
  assert per["smic"]["uf1"] == 1.0 and per["smic"]["subjects"] == 1
  c = per["casme2"]
  assert c["n"] == 4 and c["subjects"] == 2
  # casme2 pooled: class 0 recall 1/2, class 1 1/1, class 2 1/1.
  assert c["uar"] == pytest.approx((0.5 + 1 + 1) / 3)
  assert c["uf1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
  assert sum(d["n"] for d in per.values()) == 6
