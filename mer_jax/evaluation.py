"""MEGC metrics: UF1, UAR and accuracy, pooled over folds and per fold.

UF1 is the unweighted (macro) mean of per-class F1 = 2TP / (2TP + FP + FN);
UAR is the unweighted mean of per-class recall TP / (TP + FN). As in the MEGC
evaluation code, a class with no ground-truth sample in the evaluated set
(TP + FN = 0) is left out of both means: its recall is undefined. This only
matters per fold: in the pooled set every class of the protocol is present.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(labels: Sequence[int], preds: Sequence[int],
                     num_classes: int) -> np.ndarray:
  """Counts `[num_classes (true), num_classes (pred)]`."""
  labels = np.asarray(labels, np.int64)
  preds = np.asarray(preds, np.int64)
  if labels.shape != preds.shape:
    raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ")
  for name, a in (("label", labels), ("prediction", preds)):
    if a.size and (a.min() < 0 or a.max() >= num_classes):
      raise ValueError(f"{name} outside [0, {num_classes}): {np.unique(a)}")
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (labels, preds), 1)
  return cm


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
  """UF1, UAR, accuracy and n from a confusion matrix (MEGC conventions)."""
  cm = np.asarray(cm, np.float64)
  tp = np.diag(cm)
  support = cm.sum(axis=1)  # TP + FN
  predicted = cm.sum(axis=0)  # TP + FP
  present = support > 0
  n = cm.sum()
  if not present.any():
    return {"uf1": float("nan"), "uar": float("nan"),
            "accuracy": float("nan"), "n": 0}
  f1 = 2 * tp[present] / (support[present] + predicted[present])
  recall = tp[present] / support[present]
  return {"uf1": float(f1.mean()), "uar": float(recall.mean()),
          "accuracy": float(tp.sum() / n), "n": int(n)}


def scores(labels: Sequence[int], preds: Sequence[int],
           num_classes: int) -> dict[str, float]:
  """UF1, UAR, accuracy and n of one prediction set."""
  return scores_from_confusion(confusion_matrix(labels, preds, num_classes))


def summarize_folds(folds: Sequence[dict[str, Any]],
                    num_classes: int) -> dict[str, Any]:
  """Pooled and per-fold scores.

  Args:
    folds: one dict per fold with `subject`, `labels` and `preds` (ints).
    num_classes: classes in the protocol.

  Returns:
    `{"uf1", "uar", "accuracy", "n", "confusion", "per_fold": [...]}`; the
    headline numbers are computed on all predictions pooled across folds.
  """
  all_labels = np.concatenate([np.asarray(f["labels"], np.int64) for f in folds])
  all_preds = np.concatenate([np.asarray(f["preds"], np.int64) for f in folds])
  cm = confusion_matrix(all_labels, all_preds, num_classes)
  out = dict(scores_from_confusion(cm))
  out["confusion"] = cm.tolist()
  out["per_fold"] = [
      {"subject": f["subject"], **scores(f["labels"], f["preds"], num_classes)}
      for f in folds]
  return out


def per_dataset(folds: Sequence[dict[str, Any]],
                num_classes: int) -> dict[str, dict[str, Any]]:
  """Scores of each dataset of a composite run, pooled over all folds.

  MEGC 2019 reports UF1/UAR on the composite and on each of its datasets
  (SMIC-HS, CASME II, SAMM) under the one composite LOSO run. A clip's
  dataset is the first part of its `sample_id` (`casme2/sub01/EP02_01f`).

  Args:
    folds: one dict per fold with `sample_ids`, `labels` and `preds`.
    num_classes: classes in the protocol.

  Returns:
    `{dataset: {"uf1", "uar", "accuracy", "n", "subjects", "confusion"}}`
    in order of first appearance.
  """
  by: dict[str, tuple[list[int], list[int], set[str]]] = {}
  for f in folds:
    for sid, y, p in zip(f["sample_ids"], f["labels"], f["preds"]):
      name = str(sid).split("/", 1)[0]
      labels, preds, subjects = by.setdefault(name, ([], [], set()))
      labels.append(int(y))
      preds.append(int(p))
      subjects.add(str(sid).rsplit("/", 1)[0])
  out = {}
  for name, (labels, preds, subjects) in by.items():
    cm = confusion_matrix(labels, preds, num_classes)
    out[name] = {**scores_from_confusion(cm), "subjects": len(subjects),
                 "confusion": cm.tolist()}
  return out
