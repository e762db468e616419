"""Deployments: asking for an instance, terminating and archiving it."""
