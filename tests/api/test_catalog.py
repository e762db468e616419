"""The shared catalog (read by all, changed by platform admins) and organization models."""

from __future__ import annotations

import uuid

from tests.api.conftest import World


def test_catalog_reads_and_admin_updates(world: World) -> None:
    types = {t["code"]: t for t in world["user"].get("/instance_types").json()}
    zones = {z["code"]: z for z in world["user"].get("/zones").json()}
    l4 = types["L4-1-24G"]
    offered = [z["code"] for z in world["user"].get(f"/instance_types/{l4['id']}/zones").json()]
    assert offered == ["fr-par-2", "pl-waw-2"]
    in_zone = [
        t["code"]
        for t in world["user"].get(f"/zones/{zones['fr-par-2']['id']}/instance_types").json()
    ]
    assert "H100-1-80G" in in_zone and "MOCK-GPU-S" not in in_zone
    providers = {p["code"] for p in world["user"].get("/providers").json()}
    assert providers >= {"mock", "scaleway"}
    assert {r["code"] for r in world["user"].get("/regions").json()} >= {
        "fr-par",
        "nl-ams",
        "pl-waw",
    }

    change = [{"id": l4["id"], "cost_per_hour_eur": "0.80"}]
    assert world["admin"].put("/instance_types", json=change).status_code == 403  # org admin
    updated = {t["code"]: t for t in world["owner"].put("/instance_types", json=change).json()}
    assert updated["L4-1-24G"]["cost_per_hour_eur"] == "0.800000"
    world["owner"].put("/instance_types", json=[{"id": l4["id"], "cost_per_hour_eur": "0.75"}])
    assert (
        world["owner"]
        .put("/zones", json=[{"id": str(uuid.uuid4()), "is_active": False}])
        .status_code
        == 404
    )

    mock_zone = zones["local-1"]["id"]
    wrong = world["owner"].put(f"/instance_types/{l4['id']}/zones", json={"zone_ids": [mock_zone]})
    assert wrong.status_code == 422
    kept = world["owner"].put(
        f"/instance_types/{l4['id']}/zones",
        json={"zone_ids": [zones["fr-par-2"]["id"], zones["pl-waw-2"]["id"]]},
    )
    assert [z["code"] for z in kept.json()] == ["fr-par-2", "pl-waw-2"]


def test_organization_models(world: World) -> None:
    model_id = f"acme/model-{uuid.uuid4().hex[:6]}"
    body = {"name": "Acme", "model_id": model_id, "price_per_1k_input_tokens_eur": "0.001"}
    assert world["manager"].post("/models", json=body).status_code == 403
    created = world["admin"].post("/models", json=body)
    assert created.status_code == 201 and created.json()["organization_id"] == str(world.org_a)
    assert world["admin"].post("/models", json=body).status_code == 409
    mid = created.json()["id"]
    assert world["other_owner"].put(f"/models/{mid}", json={"name": "x"}).status_code == 404
    assert model_id not in world["other_owner"].get("/models").text
    renamed = world["admin"].put(f"/models/{mid}", json={"name": "Acme 2"})
    assert renamed.json()["name"] == "Acme 2"
    # Its VM's cache disk and Hugging Face gating: defaults, then changed.
    assert (created.json()["data_volume_gb"], created.json()["requires_hf_token"]) == (200, False)
    changed = world["admin"].put(
        f"/models/{mid}", json={"data_volume_gb": 500, "requires_hf_token": True}
    )
    assert (changed.json()["data_volume_gb"], changed.json()["requires_hf_token"]) == (500, True)
    for field, bad in (("data_volume_gb", 5), ("data_volume_gb", 10**20), ("requires_hf_token", 1)):
        refused = world["admin"].put(f"/models/{mid}", json={field: bad})
        assert refused.status_code == 422, (field, bad, refused.text)
    # Fields every model has: an explicit null is refused, never stored (nor a 500).
    for field in ("price_per_1k_input_tokens_eur", "data_volume_gb", "requires_hf_token"):
        refused = world["admin"].put(f"/models/{mid}", json={field: None})
        assert refused.status_code == 422, (field, refused.text)
    assert world["admin"].get(f"/models/{mid}").json()["data_volume_gb"] == 500
    public = next(m for m in world["admin"].get("/models").json() if m["organization_id"] is None)
    assert world["admin"].delete(f"/models/{public['id']}").status_code == 403
    assert (
        world["admin"].post("/models", json={**body, "model_id": "bad id with spaces"}).status_code
        == 422
    )
    assert world["admin"].delete(f"/models/{mid}").status_code == 204
    assert world["admin"].get(f"/models/{mid}").status_code == 404
