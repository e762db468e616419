"""The action log of the workspace's instances, and the action type catalog."""
