"""The suite's vocabulary and bookkeeping: how a table is declared, the plan of cells it makes, the cell
store where finished cells live, and the health rules a cell is judged by. Running and judging meet here.
"""
