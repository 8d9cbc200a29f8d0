r"""The released FDP code (`fdp_official`) on CASME II with the official schedule.

  python scripts/main.py --config configs/fdp_official_casme2.py --workdir runs/fdp_official_casme2

Dataset `casme2/5class_112` relabelled to the official order (0 surprise,
1 happiness, 2 disgust, 3 repression, 4 others), so that a checkpoint
converted with `scripts/convert_fdp_torch.py` and loaded with
`config.init_from` predicts the right classes. The official subject list
has 25 of the 26 subjects (no 18); LOSO here has one fold per subject with
clips in the protocol.

Schedule (batch 36, 501 steps per fold, Adam(1e-4) + coupled L2 1e-3), what
is and is not reproduced, `tiny`: `configs/common.py:fdp_official`.
"""

from configs import common

get_config = common.fdp_official_corpus(
    "casme2/5class_112",
    ("surprise", "happiness", "disgust", "repression", "others"))
