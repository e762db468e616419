"""Workspace-scoped reads of instances and models, and their double activation."""
