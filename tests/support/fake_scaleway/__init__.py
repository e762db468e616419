"""A fake Scaleway API on loopback, answering the real `scaleway` SDK's requests.

    cloud = FakeScalewayCloud(on_running=start_vm)
    with FakeScalewayServer(cloud) as api:
        client = Client(..., api_url=api.url, api_allow_insecure=True)

`cloud.faults` injects stock shortages, quotas, failing calls and refused credentials;
`cloud.resources()` lists everything still held (what would still bill).
"""

from tests.support.fake_scaleway.cloud import DEFAULT_ACCOUNT, FakeScalewayCloud
from tests.support.fake_scaleway.http_api import FakeScalewayServer
from tests.support.fake_scaleway.state import Account, Resource

__all__ = ["DEFAULT_ACCOUNT", "Account", "FakeScalewayCloud", "FakeScalewayServer", "Resource"]
