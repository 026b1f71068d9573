"""Running cells: one cell (`cell`), where cells run (`executors`), a table's run (`runner`), what pending
cells will cost (`costs`) and how a pair's step times are measured (`timing`).
"""
