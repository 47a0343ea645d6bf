"""honnotate.evaluate"""
