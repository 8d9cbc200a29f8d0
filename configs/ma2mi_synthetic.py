r"""MA2MI pretraining on `synthetic_macro` (held-out identities, macro AUs; no labels).

  python scripts/main.py --config configs/ma2mi_synthetic.py --workdir runs/ma2mi
  python scripts/main.py --config configs/miacnet_synthetic.py --workdir runs/miac_pt \
      --config.init_from=runs/ma2mi/pretrained

The branches (and input size, channels, normalisation) are copied from
configs/miacnet_synthetic.py so the saved parameters match MIACNet's paths and
shapes. `tiny` matches `miacnet_synthetic.py:tiny`.

Data: `synthetic_macro/s64` (tfds_builders/synthetic_macro): 6 identities
that are not `synthetic_me` subjects (other crops, other geometry) and six
macro action units that no `synthetic_me` class moves (AU5, AU6, AU20, AU26,
AU17, AU18), 5-10 px over 0.5-1.0 s. Shared with `synthetic_me`'s test
subjects: the renderer, the kind of nuisances, and one real person (the
Pexels woman behind 8 of its 10 subjects, other video frames).

Measured on synthetic_macro/s64 1.0.0 (216 clips), 600 steps, pixel loss
(1 = "no change") at step 25 -> 600: seed 0 1.002 -> 0.694, seed 1 1.002 ->
0.715, seed 2 0.999 -> 0.648. Wall 622 / 603 / 801 s (121 / 117 / 104 s of
user CPU) on a 2-core AVX-512 CPU shared at load ~15-25 (2026-12-03).
(On synthetic_me 1.x faces and AU patterns, the old in-task renderer reached
0.52: those clips moved the micro classes' own landmarks.)
"""

from configs import miacnet_synthetic
from mer_jax import config_lib


def branch_config(c, target):
  """Copies the branch keys and input geometry of MIACNet config `target` into `c`."""
  for k in miacnet_synthetic.BRANCH_KEYS:
    c.model[k] = target.model[k]
  for k in ("size", "channels", "mean", "std"):
    c.input[k] = target.input[k]


def get_config(arg=None):
  c = config_lib.base_config()
  c.task = "ma2mi_pretrain"
  c.model_name = "ma2mi"
  branch_config(c, miacnet_synthetic.get_config(arg))
  c.model.predictor_width = 32
  c.model.decoder_width = 16
  c.input.batch_size = 16
  c.optimizer.kwargs.weight_decay = 0.05
  c.schedule.lr = 2e-3
  c.schedule.warmup_steps = 30
  c.num_steps = 600
  c.log_every = 25
  c.input.datasets = ("synthetic_macro/s64",)
  c.pretrain.source = "tfds"
  c.pretrain.max_gap_ms = 160.0  # k <= 5 frames at 30 fps
  c.pretrain.future_gap_ms = 100.0  # m <= 3 frames
  c.pretrain.within_expression = True
  c.pretrain.pixel_weight = 1.0
  c.pretrain.latent_weight = 0.0  # > 0: add the EMA latent target
  c.pretrain.ema_momentum = 0.99
  c.pretrain.image_every = 200
  if arg == "tiny":
    c.input.batch_size = 4
    c.model.predictor_width = 8
    c.model.decoder_width = 8
    c.num_steps = 30
    c.log_every = 5
    c.schedule.warmup_steps = 3
    c.input.datasets = ("synthetic_macro/tiny",)
    c.pretrain.image_every = 0
    c.progress = False
  return c
