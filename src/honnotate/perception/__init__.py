"""honnotate.perception"""
