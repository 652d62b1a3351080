"""Reconciliation: invoice matching, balances, aging, suggestions, analytics and the ERP journal."""
