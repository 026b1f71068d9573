"""The network side of SE: backbones with taps, the shared-trunk ensemble and its heads, votes, metrics,
FLOPs, and what a cell's evaluation and analysis compute from the heads' logits (plus the classic models).
"""
