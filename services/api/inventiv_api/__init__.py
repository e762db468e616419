"""The public API: REST, the OpenAI-compatible gateway, and the worker proxy."""
