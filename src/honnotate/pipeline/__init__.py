"""honnotate.pipeline"""
