"""honnotate.annotate"""
