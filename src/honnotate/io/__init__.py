"""honnotate.io: the capture layout, cue files, HO-3D formats and safe loaders.

- :mod:`~honnotate.io.sequence`: ``open_sequence`` / ``CaptureSequence`` (lazy reading),
  ``SequenceWriter`` / ``write_sequence`` (atomic writing), ``SequenceMeta`` (meta.yaml);
- :mod:`~honnotate.io.calibration`: intrinsics, depth scale, camera-to-world files;
- :mod:`~honnotate.io.cues`: segmentation PNGs and 2D keypoint JSON;
- :mod:`~honnotate.io.images`: colour / label / uint16 depth images;
- :mod:`~honnotate.io.ho3d`: HO-3D annotation pickles and RGB-encoded depth;
- :mod:`~honnotate.io.check`: ``check_sequence`` (what ``honnotate check`` runs);
- :mod:`~honnotate.io.safe_pickle`: the restricted unpickler.
"""

from honnotate.io.calibration import CameraCalibration
from honnotate.io.check import CheckReport, Issue, check_sequence
from honnotate.io.cues import (
    BACKGROUND,
    HAND,
    OBJECT,
    read_keypoints2d,
    read_segmentation,
    write_keypoints2d,
    write_segmentation,
)
from honnotate.io.files import CaptureFormatError
from honnotate.io.ho3d import (
    HO3D_DEPTH_SCALE,
    decode_ho3d_depth,
    encode_ho3d_depth,
    read_ho3d_annotation,
    read_ho3d_depth_png,
    write_ho3d_annotation,
    write_ho3d_depth_png,
)
from honnotate.io.safe_pickle import UnsafePickleError, safe_load, safe_loads
from honnotate.io.sequence import (
    CaptureSequence,
    SequenceMeta,
    SequenceWriter,
    open_sequence,
    read_meta,
    write_meta,
    write_sequence,
)

__all__ = [
    "BACKGROUND",
    "OBJECT",
    "HAND",
    "HO3D_DEPTH_SCALE",
    "CameraCalibration",
    "CaptureFormatError",
    "CaptureSequence",
    "CheckReport",
    "Issue",
    "SequenceMeta",
    "SequenceWriter",
    "UnsafePickleError",
    "check_sequence",
    "decode_ho3d_depth",
    "encode_ho3d_depth",
    "open_sequence",
    "read_ho3d_annotation",
    "read_ho3d_depth_png",
    "read_keypoints2d",
    "read_meta",
    "read_segmentation",
    "safe_load",
    "safe_loads",
    "write_ho3d_annotation",
    "write_ho3d_depth_png",
    "write_keypoints2d",
    "write_meta",
    "write_segmentation",
    "write_sequence",
]
