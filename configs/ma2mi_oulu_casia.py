r"""MA2MI pretraining on Oulu-CASIA macro-expression sequences (labels unused), 112 px.

  python scripts/build_dataset.py --dataset oulu_casia --config 6class_112 --manual_dir /path/to/Oulu-CASIA
  python scripts/main.py --config configs/ma2mi_oulu_casia.py --workdir runs/ma2mi_oulu_casia
  python scripts/main.py --config configs/miacnet_casme2.py --workdir runs/miac_casme2_oulu \
      --config.init_from=runs/ma2mi_oulu_casia/pretrained

Oulu-CASIA sequences (VL camera, strong light: `oulu_casia/6class_112`;
480 sequences of 80 subjects in the release) run neutral -> peak at 25 fps
(onset 0, offset = last frame), like CK+, so every (t, t+k) pair lies
inside the expression: k <= 160 ms (4 frames), m <= 100 ms (2-3 frames).
Everything else (branches, widths, schedule) as configs/ma2mi_ck_plus.py.
Not yet run on the real corpus (licensed): step count and lr are a starting
point. `tiny` pretrains a small model on the Oulu-CASIA fixture in the tests.
"""

from configs import ma2mi_ck_plus


def get_config(arg=None):
  c = ma2mi_ck_plus.get_config(arg)
  c.input.datasets = ("oulu_casia/6class_112",)
  return c
