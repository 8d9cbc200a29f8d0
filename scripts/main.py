r"""Trains and evaluates a model under a protocol (LOSO by default).

  python scripts/main.py --config configs/fdp_synthetic.py --workdir runs/demo
  python scripts/main.py --config configs/fdp_synthetic.py:tiny --workdir runs/t \
      --config.num_steps=50

Multi-host: start one process per host with --coordinator_address host:port
--num_processes N --process_id i (on CPU, also set
XLA_FLAGS=--xla_force_host_platform_device_count=K). On a TPU pod slice, or
under SLURM / Open MPI, run the same command everywhere with --distributed:
`jax.distributed.initialize()` then reads the topology from the environment.
"""

import logging
import os
import sys

# Runnable from a clone without installing the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging as absl_logging
import jax
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, results.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
flags.DEFINE_integer("num_processes", 1, "Number of processes (multi-host).")
flags.DEFINE_integer("process_id", 0, "This process' index (multi-host).")
flags.DEFINE_bool("distributed", False,
                  "Call jax.distributed.initialize() with no arguments (TPU "
                  "pod slices, SLURM, Open MPI detect the cluster).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  # absl routes every library's INFO logs (orbax writes dozens per save) to
  # the terminal; keep those at WARNING and mer_jax's own at INFO.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("mer_jax").setLevel(logging.INFO)
  if FLAGS.distributed:
    jax.distributed.initialize()
  elif FLAGS.num_processes > 1:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id)
  from mer_jax import train  # pylint: disable=g-import-not-at-top
  from mer_jax.data.sources import DatasetError  # pylint: disable=g-import-not-at-top
  try:
    train.run(FLAGS.config, FLAGS.workdir)
  except (DatasetError, ValueError, FloatingPointError) as e:
    # Configuration and data problems: a clear message, not a traceback.
    logging.getLogger("main").debug("details", exc_info=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
