r"""Trains and evaluates a model under a protocol (LOSO by default).

  python scripts/main.py --config configs/fdp_synthetic.py --workdir runs/demo
  python scripts/main.py --config configs/fdp_synthetic.py:tiny --workdir runs/t \
      --config.num_steps=50

One run per workdir: a second process on a workdir in use stops at once
(exit 2) naming the holder; a rerun whose setup differs from the run already
in the workdir (model, seed, steps, data, ...) stops naming the keys. Use a
new --workdir, or --overwrite to move the old run to
<workdir>.replaced-<time>/ (nothing is deleted). Errors print one
"error: ..." line (exit 2 for input you can fix); --debug shows tracebacks.

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
flags.DEFINE_bool("overwrite", False,
                  "Move a run already in --workdir aside to "
                  "<workdir>.replaced-<time>/ and start afresh (never deletes).")
flags.DEFINE_bool("debug", False, "Show the Python traceback of an error.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  # absl routes every library's INFO logs (orbax writes dozens per save) to
  # the terminal; keep those at WARNING and mer_jax's own at INFO.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("mer_jax").setLevel(logging.INFO)
  try:
    _run()
  except Exception as e:  # pylint: disable=broad-except
    if FLAGS.debug:
      raise
    from mer_jax import cli  # pylint: disable=g-import-not-at-top
    logging.getLogger("main").debug("details", exc_info=True)
    sys.exit(cli.report_error(e))


def _run():
  from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mer_jax import run_identity  # pylint: disable=g-import-not-at-top
  # Before any work: values that cannot work, then the workdir lock (a
  # single-process run takes it before JAX is even imported).
  config_lib.validate(FLAGS.config)
  multi = FLAGS.distributed or FLAGS.num_processes > 1
  if not multi:
    run_identity.lock_workdir(FLAGS.workdir)
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed:
    jax.distributed.initialize()
  elif FLAGS.num_processes > 1:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id)
  if multi:
    run_identity.lock_workdir_multihost(FLAGS.workdir)
  if FLAGS.overwrite and jax.process_index() == 0:
    moved = run_identity.move_aside(FLAGS.workdir)
    if moved:
      print(f"--overwrite: moved the old run to {moved}", flush=True)
  if FLAGS.overwrite and jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("mer_jax_overwrite")
  from mer_jax import tasks  # pylint: disable=g-import-not-at-top
  tasks.run(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
