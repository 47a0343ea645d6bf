"""honnotate.geometry"""
