r"""The released FDP code (`fdp_official`) on SAMM with the official schedule.

  python scripts/main.py --config configs/fdp_official_samm.py --workdir runs/fdp_official_samm

Dataset `samm/5class_112` relabelled to the official order (0 surprise,
1 happiness, 2 anger, 3 contempt, 4 other; the official `others`), so that
a checkpoint converted with `scripts/convert_fdp_torch.py` and loaded with
`config.init_from` predicts the right classes. The full model needs ~3 s
per batch-8 step on a 2-core CPU in float32 (~2 s on a CPU with
AVX512-BF16, where the default `matmul_dtype="auto"` picks bfloat16; see
the README's benchmarks): a LOSO run over SAMM wants an accelerator
(`scripts/aot_compile.py` estimates it).

Schedule (batch 36, 501 steps per fold, Adam(1e-4) + coupled L2 1e-3), what
is and is not reproduced, `tiny`: `configs/common.py:fdp_official`.
"""

from configs import common

get_config = common.fdp_official_corpus(
    "samm/5class_112", ("surprise", "happiness", "anger", "contempt", "other"))
