"""honnotate.perception: hand/object segmentation and 2D hand keypoint networks.

- :mod:`~honnotate.perception.networks`: ``SegmentationNet`` (compact U-Net, background /
  object / hand) and ``KeypointNet`` (multi-stage heatmaps for 21 joints on a hand crop);
- :mod:`~honnotate.perception.data`: synthetic composites rendered on the fly and frames of
  existing captures (bootstrapping), deterministic per seed;
- :mod:`~honnotate.perception.train`: resumable training with checkpoints, CSV log and plot;
- :mod:`~honnotate.perception.detect`: ``Detector`` and ``detect_sequence`` (writes cue files);
- :mod:`~honnotate.perception.weights`: the weights file format, safe loading, clear errors;
- :mod:`~honnotate.perception.crops`: hand crops, heatmap targets and decoding.

Import the submodules directly (this package imports nothing heavy at import time).
"""

__all__: list[str] = []
