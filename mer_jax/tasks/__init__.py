"""Tasks other than MER training, run by `config.task` (each has run(config, workdir))."""
