"""Every route the fake answers, product by product."""

from __future__ import annotations

from tests.support.fake_scaleway import block, instance_extras, instance_servers, marketplace
from tests.support.fake_scaleway.http_api import Route


def all_routes() -> list[Route]:
    return [*instance_servers.ROUTES, *instance_extras.ROUTES, *block.ROUTES, *marketplace.ROUTES]
