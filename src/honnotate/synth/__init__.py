"""honnotate.synth"""
