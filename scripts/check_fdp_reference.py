#!/usr/bin/env python
"""Checks the Flax port of the official FDP model against reference vectors.

Usage:
  python scripts/check_fdp_reference.py REF.npz [--meta META.json]
      [--train-steps 1] [--verbose]

REF.npz is in the format of the FDP reference README (`make_ref.py`): any
width (reduced or the full official model), inferred from the stored shapes.
Prints one JSON line {"max_rel_err": {...}, "ok": ..., "failed": [...], ...}
and exits 1 when any tensor fails `max|a - b| <= 1e-4 * max|ref| + 1e-6`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from mer_jax.models.fdp_official import reference as fdp_reference  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("ref", help="reference .npz")
  parser.add_argument("--meta", help="reference meta JSON (cross-checks "
                      "n_params and the stored logits/losses summary)")
  parser.add_argument("--train-steps", type=int, default=1)
  parser.add_argument("--verbose", action="store_true",
                      help="also print every failing tensor's error")
  args = parser.parse_args(argv)

  t0 = time.time()
  with np.load(args.ref) as ref:
    summary = fdp_reference.run_reference_checks(
        ref, max_train_steps=args.train_steps)
    n_params_ref = int(ref["meta/n_params"]) if "meta/n_params" in ref else None
  summary["seconds"] = round(time.time() - t0, 1)
  if n_params_ref is not None:
    summary["n_params_ref"] = n_params_ref
  if args.meta:
    with open(args.meta) as f:
      meta = json.load(f)
    # The meta file describes the small file under "small" and the full one
    # under "full"; pick the entry with the same parameter count.
    for kind in ("small", "full"):
      entry = meta.get(kind, {})
      if n_params_ref is not None and entry.get("n_params") == n_params_ref:
        summary["meta_kind"] = kind
  print(json.dumps(summary, sort_keys=False))
  return 0 if summary["ok"] else 1


if __name__ == "__main__":
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))
