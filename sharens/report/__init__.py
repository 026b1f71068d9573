"""What a reader sees: a table's markdown report and figures, the static site, README's generated block.
"""
