"""A TensorFlow-free TensorBoard writer (scalars and images).

`clu.metric_writers` imports TensorFlow, which mer-jax does not depend on at
run time; the `tensorboard` package's own event-file writer needs nothing
else, so this thin wrapper writes the same event files.
"""

from __future__ import annotations

import time
from typing import Mapping

import jax
import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class SummaryWriter:
  """Writes scalars/images to `logdir`; a no-op on processes other than 0."""

  def __init__(self, logdir: str):
    self._writer = EventFileWriter(logdir) if jax.process_index() == 0 else None

  def _add(self, step: int, values: list) -> None:
    if self._writer is None:
      return
    event = event_pb2.Event(wall_time=time.time(), step=int(step),
                            summary=summary_pb2.Summary(value=values))
    self._writer.add_event(event)

  def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._add(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                     for k, v in scalars.items()])

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """`image`: uint8 `[H, W, 3]` RGB or `[H, W]` grey."""
    from tfds_builders import records  # pylint: disable=g-import-not-at-top
    image = np.asarray(image)
    png = records.encode_png(image)
    img = summary_pb2.Summary.Image(
        height=image.shape[0], width=image.shape[1],
        colorspace=3 if image.ndim == 3 else 1, encoded_image_string=png)
    self._add(step, [summary_pb2.Summary.Value(tag=tag, image=img)])

  def restart(self, step: int) -> None:
    """TensorBoard drops the events of earlier runs at steps >= `step`.

    A `SessionLog.START` event at `step` (what `tf.summary`'s `purge_step`
    writes): a resumed run logs again the steps a killed run logged after its
    last checkpoint, and the curves show each step once.
    """
    if self._writer is None:
      return
    self._writer.add_event(event_pb2.Event(
        wall_time=time.time(), step=int(step),
        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
