"""honnotate.geometry: cameras, projection, rotations (roma), rigid transforms, frame
conventions (OpenCV inside, OpenGL converters for HO-3D) and mesh utilities."""

from honnotate.geometry.camera import RIGID_TOLERANCE, Camera, CameraBatch, look_at, stack_cameras
from honnotate.geometry.conventions import (
    cam_to_world_opencv_to_opengl,
    cam_to_world_opengl_to_opencv,
    ho3d_project,
    opencv_to_opengl_points,
    opencv_to_opengl_pose,
    opengl_to_opencv_points,
    opengl_to_opencv_pose,
    world_to_cam_opencv_to_opengl,
    world_to_cam_opengl_to_opencv,
)
from honnotate.geometry.mesh import (
    SurfaceSamples,
    face_areas,
    face_normals,
    sample_surface,
    vertex_normals,
)
from honnotate.geometry.multiview import agreeing_views, projection_matrices, triangulate_points
from honnotate.geometry.projection import (
    MIN_DEPTH,
    depth_to_points,
    pixel_grid,
    project_points,
    unproject_depth_map,
)
from honnotate.geometry.transforms import (
    apply_rotvec,
    axis_angle_to_matrix,
    invert_rigid,
    matrix_to_axis_angle,
    rigid_matrix,
    transform_points,
)

__all__ = [
    "Camera",
    "CameraBatch",
    "stack_cameras",
    "look_at",
    "RIGID_TOLERANCE",
    "project_points",
    "projection_matrices",
    "triangulate_points",
    "agreeing_views",
    "unproject_depth_map",
    "depth_to_points",
    "pixel_grid",
    "MIN_DEPTH",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rigid_matrix",
    "invert_rigid",
    "transform_points",
    "apply_rotvec",
    "opencv_to_opengl_points",
    "opengl_to_opencv_points",
    "opencv_to_opengl_pose",
    "opengl_to_opencv_pose",
    "cam_to_world_opengl_to_opencv",
    "cam_to_world_opencv_to_opengl",
    "world_to_cam_opengl_to_opencv",
    "world_to_cam_opencv_to_opengl",
    "ho3d_project",
    "face_normals",
    "face_areas",
    "vertex_normals",
    "sample_surface",
    "SurfaceSamples",
]
