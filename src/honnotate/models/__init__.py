"""honnotate.models"""
