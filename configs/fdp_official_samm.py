r"""The released FDP code (`fdp_official`) on SAMM with the official schedule.

  python scripts/main.py --config configs/fdp_official_samm.py --workdir runs/fdp_official_samm

Dataset `samm/5class_112` relabelled to the official order (0 surprise,
1 happiness, 2 anger, 3 contempt, 4 other; the official `others`), so that
a checkpoint converted with `scripts/convert_fdp_torch.py` and loaded with
`config.init_from` predicts the right classes. Batch 36, 501 steps per fold,
Adam(1e-4) + coupled L2 1e-3: see `configs/common.py:fdp_official` for what
is and is not reproduced. The full model needs ~3 s per batch-8 step on a
2-core CPU in float32 (~2 s on a CPU with AVX512-BF16, where the default
`matmul_dtype="auto"` picks bfloat16; see the README's benchmarks): a LOSO
run over SAMM wants an accelerator (`scripts/aot_compile.py` estimates it).

Not measured here (the licensed corpus is not available on this machine).
`tiny` uses the reduced reference widths (tests).
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg, ("5class",))
  return common.fdp_official(
      ("samm/5class_112",),
      ("surprise", "happiness", "anger", "contempt", "other"), tiny=tiny)
