"""The OpenAI-compatible gateway: auth, routing to ready workers, metering."""
