"""Marketplace API v2: the images each zone offers, found by label.

The marketplace is Scaleway's public catalog: it answers without credentials.
"""

from __future__ import annotations

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import ZONES, local_images_in
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.http_api import Call, Reply, Route, listing, paged


def list_local_images(cloud: FakeScalewayCloud, call: Call) -> Reply:
    scopes = [s for s in ("image_id", "version_id", "image_label") if call.q(s)]
    if len(scopes) > 1:
        raise errors.invalid_argument(scopes[1], "only one of image_id, version_id, image_label")
    zones = [call.q("zone")] if call.q("zone") else list(ZONES)
    label, arch, kind = call.q("image_label"), call.q("arch"), call.q("type")
    found = [
        image
        for zone in zones
        for image in local_images_in(str(zone))
        if (label is None or image.label == label)
        and (arch is None or arch == "x86_64")
        and (kind is None or kind == "instance_sbs")
    ]
    page, total = paged(call, found, "page_size")
    return listing("local_images", [i.as_json() for i in page], total, header=False)


def get_local_image(cloud: FakeScalewayCloud, call: Call) -> Reply:
    for zone in ZONES:
        for image in local_images_in(zone):
            if image.id == call.params["local_image_id"]:
                return Reply(200, image.as_json())
    raise errors.not_found("local_image", call.params["local_image_id"])


ROUTES = [
    Route("GET", "/marketplace/v2/local-images", list_local_images, public=True),
    Route("GET", "/marketplace/v2/local-images/{local_image_id}", get_local_image, public=True),
]
