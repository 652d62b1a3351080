"""Refund cases: one per deduction, classified, prioritised by deadline and value, worked to the end."""
