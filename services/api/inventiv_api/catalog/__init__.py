"""The provider catalog every organization deploys from: providers, regions, zones,
instance types and which zones offer which type. Models live in `inventiv_api.models`."""
