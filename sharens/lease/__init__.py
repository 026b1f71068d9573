"""A GPU lease's work: the campaign that runs pending cells on a borrowed device and the staging of data and
results to carry to it and back.
"""
