"""Models: the public catalog and each organization's own, and their activation."""
