"""Training: state, sharding, jitted steps, the step loop, LOSO folds, reports.

  state.py     TrainState, optimizer and schedule, model-init input shape
  sharding.py  device mesh, `Sharder` (data parallel batches, FSDP rule)
  steps.py     jitted train / eval / preview steps on a mesh (`build_steps`)
  loop.py      the one step loop (cadence, NaN stop, callbacks, progress bar)
  loso.py      LOSO folds and `train_and_evaluate(config, workdir)`
  report.py    results.json, predictions.csv, confusion.png, printed tables
"""
