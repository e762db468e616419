"""Platform administration of the api process itself: what it is doing."""
