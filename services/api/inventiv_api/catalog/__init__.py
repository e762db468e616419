"""The provider catalog (providers, regions, zones, instance types and their zones) and
the models an organization can deploy."""
