"""honnotate.render"""
