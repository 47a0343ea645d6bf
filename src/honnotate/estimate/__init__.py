"""honnotate.estimate"""
