"""honnotate: 3D hand + object pose annotation of RGB-D sequences (the HOnnotate method)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
