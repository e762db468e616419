"""Costs: per-minute GPU cost, forecasts, rollups and token usage."""
