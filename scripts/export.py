r"""Exports a trained fold as a portable inference artifact (`.mer`).

  python scripts/export.py --checkpoint runs/demo --fold sub01 --out model.mer

The artifact holds the `jax.export` (StableHLO) eval function, its params,
the input spec (frames, size, channels, normalisation, temporal sampling,
alignment), the class names and the training config: enough to classify
aligned clips with jax + numpy alone (see mer_jax/artifact.py), or with
`mer_jax.load_model("model.mer")` / `scripts/predict.py --checkpoint
model.mer`. Problems you can fix (a missing or damaged checkpoint, an
unwritable --out) end with "error: ..." and exit status 2; an unexpected
error exits 1 (--debug shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

# Runnable from a clone without installing the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n\n".join(__doc__.split("\n\n")[1:]))
  p.add_argument("--checkpoint", required=True,
                 help="a fold's checkpoints/ dir, a fold dir, or a run workdir")
  p.add_argument("--fold", default=None, help="which fold of a run workdir (e.g. sub01)")
  p.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
  p.add_argument("--out", required=True, help="the artifact to write (model.mer)")
  p.add_argument("--platforms", default="cpu,cuda,tpu",
                 help="comma-separated lowering targets of the StableHLO module")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  return p.parse_args(argv)


def export(args) -> int:
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger("absl").setLevel(logging.ERROR)
  from mer_jax import artifact  # pylint: disable=g-import-not-at-top
  spec = artifact.export_model(
      args.checkpoint, args.out, fold=args.fold, step=args.step,
      platforms=[p.strip() for p in args.platforms.split(",") if p.strip()])
  i = spec["input"]
  print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB): "
        f"{spec['model']}, step {spec['source']['step']}, "
        f"{len(spec['class_names'])} classes, input uint8 [B, {i['num_frames']}, "
        f"{i['size']}, {i['size']}, {i['channels']}] ({i['temporal_sampling']} "
        f"sampling), platforms {','.join(spec['function']['platforms'])}")
  return 0


def main(argv=None) -> int:
  args = parse_args(argv)
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.run_main(export, args, debug=args.debug)


if __name__ == "__main__":
  sys.exit(main())
