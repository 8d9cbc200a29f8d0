#!/usr/bin/env python
"""Writes the small reference subset used by tests/test_fdp_official.py.

Usage:
  python scripts/make_fdp_test_subset.py /path/to/fdp_ref_small.npz \
      --out tests/data/fdp_ref_small.npz

Keeps what `mer_jax.models.fdp_official.reference.run_reference_checks` needs for the eval
(plain + calib), target, loss and train step-1 checks: every state_dict
tensor, in/*, target/*, out/* (minus dynamic_rep_5d, redundant, and the plain
dynamic_representation, bias-dominated under the default init; the calib one
is kept), the five
SegNet pre-pool BN hooks (for the tie-aware pool-index check), calib/state,
calib/out, calib/loss, and train/step1/{losses, logits, dyimg, state} plus the gradients of
the 1-D tensors (biases, BN).
Hooks, gradnorms and step 2 are dropped. Compressed, under 8 MB.
"""

from __future__ import annotations

import argparse
import os
import re

import numpy as np

KEEP = re.compile(
    r"^(in/|target/|loss/|meta/n_params$"
    r"|out/(?!dynamic_rep_5d|dynamic_representation)"
    r"|hook/dyimg_net\.bn(12|22|33|43|53)$"
    r"|calib/(state|loss)/"
    r"|calib/out/(?!dynamic_rep_5d)"
    r"|train/step1/(loss_|logits$|dyimg$|state/))")
# Gradients cost as much as the weights; keep those of the 1-D tensors (all
# biases and BN parameters, including the mathematically-zero ones). The
# kernels' gradients are still checked through the Adam-updated parameters in
# train/step1/state/ (and in full by check_fdp_reference.py on the full file).


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("ref")
  parser.add_argument("--out", default="tests/data/fdp_ref_small.npz")
  args = parser.parse_args()
  with np.load(args.ref) as ref:
    keep = {k: ref[k] for k in ref.files if "/" not in k or KEEP.match(k)}
    for k in ref.files:
      if k.startswith("train/step1/grad/") and ref[k].ndim == 1:
        keep[k] = ref[k]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **keep)
  print(f"{args.out}: {len(keep)} keys, {os.path.getsize(args.out) / 2**20:.2f} MiB")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))
