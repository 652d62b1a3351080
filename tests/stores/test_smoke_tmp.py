from tests.conftest import Tenant
from tests.stores.factories import store_body


async def test_create_and_get(client, account: Tenant):
    r = await client.post("/v1/stores", json=store_body(), headers=account.headers())
    assert r.status_code == 201, r.text
    store = r.json()
    r = await client.get(f"/v1/stores/{store['id']}", headers=account.headers())
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "NYC-01"
