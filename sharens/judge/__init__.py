"""From stored cells to verdicts: the interval and its simulated coverage, the claims and their
multiplicity control, the result document, the cost claims (throughput) and older records' upgrade.
"""
