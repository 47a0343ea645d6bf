"""honnotate.io"""
