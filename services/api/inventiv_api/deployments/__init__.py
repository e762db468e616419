"""Deployments: asking for a model to be served on an instance type in a zone."""
