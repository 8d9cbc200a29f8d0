"""What a finished LOSO run writes and prints.

  results.json     pooled scores (MEGC: UF1, UAR pooled over folds, accuracy),
                   per fold and, for a composite, per dataset
  config.json      the config as run
  predictions.csv  one row per test clip: fold, sample, label, prediction, probs
  confusion.png    the pooled confusion matrix
  tensorboard/summary/  the pooled and per-fold scores
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import ml_collections
import numpy as np

from mer_jax import checkpoints
from mer_jax import evaluation
from mer_jax import metric_writer
from mer_jax import plots
from mer_jax.data import sources


def pooled_results(config: ml_collections.ConfigDict, corpus: sources.Corpus,
                   fold_results: list[dict[str, Any]], num_params: int) -> dict[str, Any]:
  """The content of results.json from the folds' results."""
  num_classes = len(corpus.class_names)
  summary = evaluation.summarize_folds(fold_results, num_classes)
  results = {
      "protocol": config.protocol.name,
      "selection": config.protocol.selection,
      "oracle": False,
      "dataset": ",".join(corpus.names),
      "model": config.model_name,
      "seed": config.seed,
      "class_names": list(corpus.class_names),
      "uf1": summary["uf1"], "uar": summary["uar"],
      "accuracy": summary["accuracy"], "n": summary["n"],
      "excluded_clips": corpus.excluded,
      "num_steps": config.num_steps,
      "num_params": num_params,
      "per_fold": [{**pf, "selected_step": r["selected_step"]}
                   for pf, r in zip(summary["per_fold"], fold_results)],
      "confusion": summary["confusion"],
  }
  if len(corpus.names) > 1:
    # A composite (MEGC 2019): each dataset's scores as well as the pooled ones.
    results["per_dataset"] = evaluation.per_dataset(fold_results, num_classes)
  return results


def write_run(workdir: str, config: ml_collections.ConfigDict, corpus: sources.Corpus,
              results: dict[str, Any], fold_results: list[dict[str, Any]]) -> None:
  """config.json, results.json, predictions.csv, confusion.png, TensorBoard summary."""
  checkpoints.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  checkpoints.write_json(os.path.join(workdir, "results.json"), results)
  write_predictions(os.path.join(workdir, "predictions.csv"), fold_results,
                    corpus.class_names)
  plots.plot_confusion(
      np.array(results["confusion"]), corpus.class_names,
      os.path.join(workdir, "confusion.png"),
      f"{config.model_name} on {results['dataset']}, {config.protocol.name} "
      f"({config.protocol.selection})\nUF1 {results['uf1']:.3f}  UAR "
      f"{results['uar']:.3f}  n={results['n']}")
  w = metric_writer.SummaryWriter(os.path.join(workdir, "tensorboard", "summary"))
  try:
    w.scalars(0, {f"{config.protocol.name}/uf1": results["uf1"],
                  f"{config.protocol.name}/uar": results["uar"],
                  f"{config.protocol.name}/accuracy": results["accuracy"]})
    for i, pf in enumerate(results["per_fold"]):
      w.scalars(i, {"per_fold/uf1": pf["uf1"], "per_fold/uar": pf["uar"],
                    "per_fold/accuracy": pf["accuracy"]})
  finally:
    w.close()


def write_predictions(path: str, fold_results: list[dict[str, Any]],
                      class_names: Sequence[str]) -> None:
  """predictions.csv: one row per test clip with its class probabilities."""
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["fold_subject", "sample_id", "label", "label_name", "pred",
                "pred_name"] + [f"p_{c}" for c in class_names])
    for r in fold_results:
      for sid, y, p, pr in zip(r["sample_ids"], r["labels"], r["preds"], r["probs"]):
        w.writerow([r["subject"], sid, y, class_names[y], p, class_names[p]]
                   + [f"{v:.6f}" for v in pr])


def print_summary(results: dict[str, Any], seconds: float) -> None:
  """Prints the per-fold table and the one-line pooled summary."""
  lines = [f"{'fold (test subject)':<32} {'n':>4} {'UF1':>6} {'UAR':>6} {'acc':>6} {'step':>6}"]
  for pf in results["per_fold"]:
    lines.append(f"{pf['subject']:<32} {pf['n']:>4} {pf['uf1']:>6.3f} "
                 f"{pf['uar']:>6.3f} {pf['accuracy']:>6.3f} {pf['selected_step']:>6}")
  lines.append("")
  lines.append(f"{'dataset':<22} {'model':<14} {'protocol':<10} {'selection':<10} "
               f"{'folds':>5} {'n':>5} {'UF1':>6} {'UAR':>6} {'acc':>6} {'time':>7}")
  lines.append(f"{results['dataset']:<22} {results['model']:<14} "
               f"{results['protocol']:<10} {results['selection']:<10} "
               f"{len(results['per_fold']):>5} {results['n']:>5} {results['uf1']:>6.3f} "
               f"{results['uar']:>6.3f} {results['accuracy']:>6.3f} {seconds:>6.0f}s")
  if results.get("per_dataset"):
    lines.append("")
    lines.append(f"{'per dataset (pooled over folds)':<32} {'subj':>5} {'n':>5} "
                 f"{'UF1':>6} {'UAR':>6} {'acc':>6}")
    rows = list(results["per_dataset"].items())
    rows.append(("overall", {"subjects": len(results["per_fold"]), "n": results["n"],
                             "uf1": results["uf1"], "uar": results["uar"],
                             "accuracy": results["accuracy"]}))
    for name, d in rows:
      lines.append(f"{name:<32} {d['subjects']:>5} {d['n']:>5} {d['uf1']:>6.3f} "
                   f"{d['uar']:>6.3f} {d['accuracy']:>6.3f}")
  print("\n".join(lines), flush=True)
