"""TFDS builders for mer-jax. Importing a builder module registers it with TFDS."""
