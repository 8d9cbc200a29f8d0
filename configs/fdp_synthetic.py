r"""The README's main job: synthetic corpus, LOSO.

  python scripts/main.py --config configs/fdp_synthetic.py --workdir runs/demo

Until the paper-architecture FDP model meets its accuracy and time budget on
2 CPU cores, this names the sanity baseline (same as baseline_synthetic.py).
Measured (seed 0, shared 2-core CPU): LOSO UF1 0.883, UAR 0.883, 721 s.

`tiny` shrinks everything (3 subjects, few steps) for tests and a quick look.
"""

from mer_jax import config_lib


def get_config(arg=None):
  c = config_lib.base_config()
  c.input.datasets = ("synthetic_me/s64",)
  c.input.num_frames = 8
  c.input.size = 64
  c.model_name = "baseline3d"
  c.model.patch = 4
  c.model.widths = (24, 32)
  c.model.dropout = 0.2
  c.schedule.lr = 2e-3
  c.num_steps = 300
  if arg == "tiny":
    c.input.datasets = ("synthetic_me/tiny",)
    c.input.size = 32
    c.input.batch_size = 8
    c.input.eval_batch_size = 8
    c.model.widths = (8, 8)
    c.num_steps = 6
    c.log_every = 2
    c.checkpoint_every = 3
    c.protocol.eval_every = 3
    c.progress = False
  return c
