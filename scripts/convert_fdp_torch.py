#!/usr/bin/env python
"""Converts an official FDP PyTorch state_dict into a Flax/orbax checkpoint.

Usage:
  python scripts/convert_fdp_torch.py STATE.pt  --out CKPT_DIR   # needs torch
  python scripts/convert_fdp_torch.py STATE.npz --out CKPT_DIR   # name -> array

Writes CKPT_DIR in mer-jax's one checkpoint format (`mer_jax.checkpoints`:
CKPT_DIR/0/state holds {'params', 'batch_stats'}, CKPT_DIR/mer_jax_meta.json
the `fdp_official` Model kwargs inferred from the shapes). Read it with
`mer_jax.checkpoints.load_model_variables`, or start training from it with
`--config.init_from=CKPT_DIR`.
Entries with '/' in their name (reference-file extras) and
`num_batches_tracked` are ignored; a missing key, an unexpected key or a shape
mismatch is an error naming the key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mer_jax import checkpoints  # noqa: E402
from mer_jax.models import fdp_official  # noqa: E402


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """torch .pt/.pth (state_dict, {'state_dict': ...} or a module) or .npz."""
  if path.endswith(".npz"):
    with np.load(path) as f:
      return {k: f[k] for k in f.files if "/" not in k}
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    sys.exit(f"{path}: reading .pt files needs torch; convert it to .npz "
             "(np.savez(out, **{k: v.numpy() for k, v in sd.items()})) or "
             "install torch")
  obj = torch.load(path, map_location="cpu", weights_only=False)
  if hasattr(obj, "state_dict"):
    obj = obj.state_dict()
  for key in ("state_dict", "model", "model_state_dict"):
    if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
      obj = obj[key]
  # Checkpoints saved from nn.DataParallel prefix every key with 'module.'.
  return {k[len("module."):] if k.startswith("module.") else k:
          v.detach().cpu().numpy() for k, v in obj.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("state", help="state_dict file (.pt/.pth or .npz)")
  parser.add_argument("--out", required=True, help="checkpoint directory")
  args = parser.parse_args(argv)
  state_dict = read_state_dict(args.state)
  try:
    config = fdp_official.infer_config(state_dict)
    variables = fdp_official.load(state_dict, config)
  except (KeyError, ValueError) as e:
    sys.exit(f"{args.state}: {e.args[0] if e.args else e}")
  checkpoints.save_model(args.out, variables, {
      "model_name": "fdp_official", "num_classes": config["num_classes"],
      "model": {k: v for k, v in config.items() if k != "num_classes"}})
  n = sum(int(np.size(v)) for v in jax.tree.leaves(variables["params"]))
  print(json.dumps({"out": os.path.abspath(args.out), "n_params": n,
                    "config": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in config.items()}}))
  return 0


if __name__ == "__main__":
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))
