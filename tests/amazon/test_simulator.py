"""Contract and behaviour tests of the SP-API simulator."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from acorn_sim import FaultConfig, SimulatorConfig, create_simulator_app
from acorn_sim.ratelimit import TokenBucket
from acorn_sim.sandbox import examples
from acorn_sim.specs import OPERATIONS, SPEC_FILES, find_operation, spec_bytes

from .simulator_helpers import (
    LWA_FORM,
    SHARED_MODELS,
    FakeClock,
    access_token,
    assert_matches_model,
    assert_valid_report,
)

ORDERS = "vendorOrders.json"
POS_PATH = "/vendor/orders/v1/purchaseOrders"
ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "seed": 7,
        "purchase_orders": 300,
        "anchor": ANCHOR,
        "rate_limits_enabled": False,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


@asynccontextmanager
async def simulator(
    cfg: SimulatorConfig, clock: FakeClock | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = create_simulator_app(cfg, clock=clock) if clock else create_simulator_app(cfg)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client, await access_token(client)


def last_week() -> dict[str, str]:
    return {"createdAfter": iso(ANCHOR - timedelta(days=7)), "createdBefore": iso(ANCHOR)}


async def sync_window(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    """All orders of one query, following nextToken; returns (orders, pages)."""
    orders: list[dict[str, Any]] = []
    pages = 0
    query = dict(params)
    while True:
        response = await client.get(POS_PATH, params=query, headers=headers)
        assert response.status_code == 200, response.text
        payload = response.json()["payload"]
        orders.extend(payload["orders"])
        pages += 1
        token = payload.get("pagination", {}).get("nextToken")
        if token is None:
            return orders, pages
        query = {"nextToken": token, "limit": params.get("limit", 100)}


# ------------------------------------------------------------------ models


def test_vendored_specs_are_byte_identical_to_shared_models() -> None:
    if not SHARED_MODELS.is_dir():
        pytest.skip("shared sp-api-models folder not present")
    for name in (*SPEC_FILES, "SOURCE.md"):
        assert spec_bytes(name) == (SHARED_MODELS / name).read_bytes(), name


def test_every_operation_is_in_the_models() -> None:
    for operation in OPERATIONS:
        _path, _method, op = find_operation(operation)
        assert "responses" in op


# ---------------------------------------------------------------- LWA/auth


@pytest.mark.asyncio
async def test_lwa_issues_tokens_and_rejects_bad_credentials() -> None:
    async with simulator(config()) as (client, _headers):
        ok = (await client.post("/auth/o2/token", data=LWA_FORM)).json()
        assert ok["access_token"].startswith("Atza|")
        assert (ok["token_type"], ok["expires_in"], ok["refresh_token"]) == (
            "bearer",
            3600,
            "Atzr|sim-refresh",
        )
        bad_client = await client.post("/auth/o2/token", data={**LWA_FORM, "client_secret": "nope"})
        assert bad_client.status_code == 401
        assert bad_client.json()["error"] == "invalid_client"
        bad_grant = await client.post("/auth/o2/token", data={**LWA_FORM, "refresh_token": "Atzr|other"})
        assert bad_grant.status_code == 400
        assert bad_grant.json()["error"] == "invalid_grant"
        stats = (await client.get("/_simulator/stats")).json()
        assert stats["tokensIssued"] == 2


@pytest.mark.asyncio
async def test_missing_unknown_and_expired_tokens_are_403() -> None:
    clock = FakeClock()
    async with simulator(config(access_token_ttl=60), clock) as (client, headers):
        params = last_week()
        for bad in ({}, {"x-amz-access-token": "Atza|forged"}):
            response = await client.get(POS_PATH, params=params, headers=bad)
            assert response.status_code == 403
            body = assert_matches_model(response, ORDERS, POS_PATH, "get")
            assert body["errors"][0]["code"] == "Unauthorized"
        assert (await client.get(POS_PATH, params=params, headers=headers)).status_code == 200
        clock.now += 60
        expired = await client.get(POS_PATH, params=params, headers=headers)
        assert expired.status_code == 403
        assert assert_matches_model(expired, ORDERS, POS_PATH, "get") == {
            "errors": [
                {
                    "code": "Unauthorized",
                    "message": "Access to requested resource is denied.",
                    "details": "The access token you provided has expired.",
                }
            ]
        }


# ---------------------------------------------------------- purchase orders


@pytest.mark.asyncio
async def test_get_purchase_orders_matches_the_model_and_sets_headers() -> None:
    async with simulator(config(rate_limits_enabled=True)) as (client, headers):
        response = await client.get(POS_PATH, params={**last_week(), "limit": 5}, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-amzn-RateLimit-Limit"] == "10.0"
        body = assert_matches_model(response, ORDERS, POS_PATH, "get")
        orders = body["payload"]["orders"]
        assert len(orders) == 5
        for order in orders:
            details = order["orderDetails"]
            assert len(order["purchaseOrderNumber"]) == 8 and order["purchaseOrderNumber"].isalnum()
            assert details["sellingParty"]["partyId"] in ("ACME1", "ACME2")
            window = details.get("shipWindow") or details["deliveryWindow"]
            start, end = window.split("--")
            assert start.endswith("Z") and end.endswith("Z") and start < end
            for item in details["items"]:
                assert item["amazonProductIdentifier"].startswith("B0")
                assert "." in item["netCost"]["amount"] and isinstance(item["netCost"]["amount"], str)
        dates = [order["orderDetails"]["purchaseOrderDate"] for order in orders]
        assert dates == sorted(dates)
        numbers_only = await client.get(POS_PATH, params={**last_week(), "includeDetails": "false"}, headers=headers)
        assert all(
            set(order) == {"purchaseOrderNumber", "purchaseOrderState"}
            for order in numbers_only.json()["payload"]["orders"]
        )


@pytest.mark.asyncio
async def test_pagination_of_10000_orders_takes_exactly_100_pages() -> None:
    async with simulator(config(purchase_orders=10_000, history_days=7, seed=3)) as (client, headers):
        truth = (await client.get("/_simulator/purchase-orders")).json()["purchaseOrderNumbers"]
        orders, pages = await sync_window(client, headers, {**last_week(), "limit": 100, "includeDetails": "true"})
        assert pages == 100
        assert [order["purchaseOrderNumber"] for order in orders] == truth


@pytest.mark.asyncio
async def test_weekly_windows_cover_every_order_exactly_once_in_both_orders() -> None:
    async with simulator(config(purchase_orders=1500)) as (client, headers):
        truth = (await client.get("/_simulator/purchase-orders")).json()["purchaseOrderNumbers"]
        seen: list[str] = []
        descending: list[str] = []
        for week in range(26):
            before = ANCHOR - timedelta(days=7 * week)
            window = {
                "createdAfter": iso(before - timedelta(days=7)),
                "createdBefore": iso(before),
                "limit": 37,
            }
            orders, _ = await sync_window(client, headers, window)
            seen.extend(order["purchaseOrderNumber"] for order in orders)
            reverse, _ = await sync_window(client, headers, {**window, "sortOrder": "DESC"})
            descending.extend(order["purchaseOrderNumber"] for order in reverse)
        assert sorted(seen) == sorted(truth) and len(seen) == len(set(seen))
        assert descending == truth[::-1]


@pytest.mark.asyncio
async def test_same_seed_gives_byte_identical_pages_and_other_seeds_differ() -> None:
    bodies = []
    for seed in (11, 11, 12):
        async with simulator(config(seed=seed)) as (client, headers):
            first = await client.get(POS_PATH, params={**last_week(), "limit": 3}, headers=headers)
            token = first.json()["payload"]["pagination"]["nextToken"]
            second = await client.get(POS_PATH, params={"nextToken": token, "limit": 3}, headers=headers)
            status = await client.get("/vendor/orders/v1/purchaseOrdersStatus", params=last_week(), headers=headers)
            bodies.append(first.content + second.content + status.content)
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


@pytest.mark.asyncio
async def test_date_range_over_seven_days_and_bad_parameters_are_400() -> None:
    async with simulator(config()) as (client, headers):
        for params in (
            {"createdAfter": iso(ANCHOR - timedelta(days=8)), "createdBefore": iso(ANCHOR)},
            {"changedAfter": iso(ANCHOR - timedelta(days=7, seconds=1)), "changedBefore": iso(ANCHOR)},
            {**last_week(), "createdBefore": "2019-09-2100:00:00"},
            {**last_week(), "limit": "101"},
            {**last_week(), "purchaseOrderState": "Open"},
            {"nextToken": "not-a-token"},
        ):
            response = await client.get(POS_PATH, params=params, headers=headers)
            assert response.status_code == 400, params
            body = assert_matches_model(response, ORDERS, POS_PATH, "get")
            assert body["errors"][0]["code"] == "InvalidInput"


@pytest.mark.asyncio
async def test_unknown_query_parameters_are_ignored() -> None:
    async with simulator(config()) as (client, headers):
        plain = await client.get(POS_PATH, params=last_week(), headers=headers)
        extra = {**last_week(), "MarketplaceId": "ATVPDKIKX0DER", "marketplaceIds": "ATVPDKIKX0DER"}
        noisy = await client.get(POS_PATH, params=extra, headers=headers)
        assert noisy.status_code == 200
        assert noisy.content == plain.content


@pytest.mark.asyncio
async def test_filters_select_matching_orders() -> None:
    async with simulator(config(purchase_orders=3000)) as (client, headers):
        window = last_week()
        everything, _ = await sync_window(client, headers, window)
        for params, predicate in (
            ({"purchaseOrderState": "New"}, lambda order: order["purchaseOrderState"] == "New"),
            (
                {"orderingVendorCode": "ACME2"},
                lambda o: o["orderDetails"]["sellingParty"]["partyId"] == "ACME2",
            ),
            ({"isPOChanged": "true"}, lambda order: "purchaseOrderChangedDate" in order["orderDetails"]),
            (
                {"poItemState": "Cancelled"},
                lambda order: any(item["orderedQuantity"]["amount"] == 0 for item in order["orderDetails"]["items"]),
            ),
        ):
            selected, _ = await sync_window(client, headers, {**window, **params})
            expected = [order for order in everything if predicate(order)]
            assert selected == expected and selected, params


@pytest.mark.asyncio
async def test_get_purchase_order_and_not_found() -> None:
    path = "/vendor/orders/v1/purchaseOrders/{purchaseOrderNumber}"
    async with simulator(config()) as (client, headers):
        number = (await client.get("/_simulator/purchase-orders")).json()["purchaseOrderNumbers"][0]
        found = await client.get(f"/vendor/orders/v1/purchaseOrders/{number}", headers=headers)
        assert found.status_code == 200
        assert assert_matches_model(found, ORDERS, path, "get")["payload"]["purchaseOrderNumber"] == number
        missing = await client.get("/vendor/orders/v1/purchaseOrders/ZZZZZZZZ", headers=headers)
        assert missing.status_code == 404
        assert assert_matches_model(missing, ORDERS, path, "get")["errors"][0]["code"] == "NotFound"


@pytest.mark.asyncio
async def test_purchase_orders_status_reports_short_receipts() -> None:
    path = "/vendor/orders/v1/purchaseOrdersStatus"
    async with simulator(config(purchase_orders=3000)) as (client, headers):
        window = {
            "createdAfter": iso(ANCHOR - timedelta(days=60)),
            "createdBefore": iso(ANCHOR - timedelta(days=53)),
        }
        response = await client.get(path, params={**window, "itemReceiveStatus": "PARTIALLY_RECEIVED"}, headers=headers)
        body = assert_matches_model(response, ORDERS, path, "get")
        statuses = body["payload"]["ordersStatus"]
        assert statuses
        short = [
            item
            for status in statuses
            for item in status["itemStatus"]
            if item["receivingStatus"]["receiveStatus"] == "PARTIALLY_RECEIVED"
        ]
        assert short
        for item in short:
            received = item["receivingStatus"]["receivedQuantity"]["amount"]
            assert received < item["acknowledgementStatus"]["acceptedQuantity"]["amount"]
        wide = {"updatedAfter": iso(ANCHOR - timedelta(days=9)), "updatedBefore": iso(ANCHOR)}
        too_wide = await client.get(path, params=wide, headers=headers)
        assert too_wide.status_code == 400
        assert_matches_model(too_wide, ORDERS, path, "get")


@pytest.mark.asyncio
async def test_shipment_details_match_the_model_and_paginate() -> None:
    path = "/vendor/shipping/v1/shipments"
    async with simulator(config()) as (client, headers):
        identifiers: list[str] = []
        params: dict[str, Any] = {"limit": 50}
        while True:
            response = await client.get(path, params=params, headers=headers)
            payload = assert_matches_model(response, "vendorShipments.json", path, "get")["payload"]
            assert len(payload["shipments"]) <= 50
            identifiers.extend(shipment["vendorShipmentIdentifier"] for shipment in payload["shipments"])
            if "pagination" not in payload:
                break
            params = {"nextToken": payload["pagination"]["nextToken"], "limit": 50}
        assert len(identifiers) > 50 and len(identifiers) == len(set(identifiers))
        one = await client.get(path, params={"vendorShipmentIdentifier": identifiers[3]}, headers=headers)
        assert [s["vendorShipmentIdentifier"] for s in one.json()["payload"]["shipments"]] == [identifiers[3]]
        bad = await client.get(path, params={"limit": 51}, headers=headers)
        assert bad.status_code == 400
        assert_matches_model(bad, "vendorShipments.json", path, "get")


# ------------------------------------------------- acknowledgements/invoices


async def poll_transaction(client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str) -> list[str]:
    path = "/vendor/transactions/v1/transactions/{transactionId}"
    statuses = []
    for _ in range(2):
        response = await client.get(f"/vendor/transactions/v1/transactions/{transaction_id}", headers=headers)
        body = assert_matches_model(response, "vendorTransactionStatus.json", path, "get")
        statuses.append(body["payload"]["transactionStatus"]["status"])
    return statuses


@pytest.mark.asyncio
async def test_acknowledgement_creates_a_transaction_and_acknowledges_the_order() -> None:
    path = "/vendor/orders/v1/acknowledgements"
    async with simulator(config()) as (client, headers):
        new, _ = await sync_window(client, headers, {**last_week(), "purchaseOrderState": "New"})
        order = new[0]
        details = order["orderDetails"]
        acknowledgement = {
            "purchaseOrderNumber": order["purchaseOrderNumber"],
            "sellingParty": details["sellingParty"],
            "acknowledgementDate": iso(ANCHOR),
            "items": [
                {
                    "itemSequenceNumber": item["itemSequenceNumber"],
                    "orderedQuantity": item["orderedQuantity"],
                    "itemAcknowledgements": [
                        {"acknowledgementCode": "Accepted", "acknowledgedQuantity": item["orderedQuantity"]}
                    ],
                }
                for item in details["items"]
            ],
        }
        response = await client.post(path, json={"acknowledgements": [acknowledgement]}, headers=headers)
        assert response.status_code == 202
        transaction_id = assert_matches_model(response, ORDERS, path, "post")["payload"]["transactionId"]
        assert await poll_transaction(client, headers, transaction_id) == ["Processing", "Success"]
        again = await client.get(f"{POS_PATH}/{order['purchaseOrderNumber']}", headers=headers)
        assert again.json()["payload"]["purchaseOrderState"] == "Acknowledged"
        invalid = await client.post(path, json={"acknowledgements": [{"purchaseOrderNumber": "X"}]}, headers=headers)
        assert invalid.status_code == 400
        assert_matches_model(invalid, ORDERS, path, "post")


def invoice(invoice_id: str, total: str, number: str) -> dict[str, Any]:
    return {
        "invoiceType": "Invoice",
        "id": invoice_id,
        "date": iso(ANCHOR),
        "remitToParty": {"partyId": "ACME1"},
        "invoiceTotal": {"currencyCode": "USD", "amount": total},
        "items": [
            {
                "itemSequenceNumber": 1,
                "invoicedQuantity": {"amount": 3, "unitOfMeasure": "Eaches"},
                "netCost": {"currencyCode": "USD", "amount": "10.50"},
                "purchaseOrderNumber": number,
            }
        ],
    }


@pytest.mark.asyncio
async def test_invoices_succeed_or_fail_deterministically() -> None:
    path = "/vendor/payments/v1/invoices"
    tx_path = "/vendor/transactions/v1/transactions/{transactionId}"
    async with simulator(config()) as (client, headers):
        number = (await client.get("/_simulator/purchase-orders")).json()["purchaseOrderNumbers"][0]
        good = await client.post(path, json={"invoices": [invoice("INV-1", "31.50", number)]}, headers=headers)
        assert good.status_code == 202
        good_id = assert_matches_model(good, "vendorInvoices.json", path, "post")["payload"]["transactionId"]
        assert await poll_transaction(client, headers, good_id) == ["Processing", "Success"]
        wrong = await client.post(path, json={"invoices": [invoice("INV-2", "99.00", "NOPE0000")]}, headers=headers)
        wrong_id = wrong.json()["payload"]["transactionId"]
        assert await poll_transaction(client, headers, wrong_id) == ["Processing", "Failure"]
        final = await client.get(f"/vendor/transactions/v1/transactions/{wrong_id}", headers=headers)
        codes = {error["code"] for error in final.json()["payload"]["transactionStatus"]["errors"]}
        assert codes == {"InvalidPurchaseOrder", "InvoiceTotalMismatch"}
        malformed = await client.post(path, json={"invoices": [{"invoiceType": "Invoic"}]}, headers=headers)
        assert malformed.status_code == 400
        assert_matches_model(malformed, "vendorInvoices.json", path, "post")
        unknown = await client.get("/vendor/transactions/v1/transactions/nope", headers=headers)
        assert unknown.status_code == 404
        assert_matches_model(unknown, "vendorTransactionStatus.json", tx_path, "get")


# ------------------------------------------------------------------ reports


@pytest.mark.parametrize(
    ("report_type", "schema", "period"),
    [
        ("GET_VENDOR_SALES_REPORT", "vendorSalesReport.json", "WEEK"),
        ("GET_VENDOR_INVENTORY_REPORT", "vendorInventoryReport.json", "DAY"),
    ],
)
@pytest.mark.asyncio
async def test_report_lifecycle_and_document_schema(report_type: str, schema: str, period: str) -> None:
    reports = "reports_2021-06-30.json"
    async with simulator(config()) as (client, headers):
        specification = {
            "reportType": report_type,
            "marketplaceIds": ["ATVPDKIKX0DER"],
            "reportOptions": {
                "reportPeriod": period,
                "distributorView": "MANUFACTURING",
                "sellingProgram": "RETAIL",
            },
            "dataStartTime": "2025-11-02T00:00:00Z",
            "dataEndTime": "2025-11-15T23:59:59Z",
        }
        created = await client.post("/reports/2021-06-30/reports", json=specification, headers=headers)
        assert created.status_code == 202
        report_id = assert_matches_model(created, reports, "/reports/2021-06-30/reports", "post")["reportId"]
        states = []
        for _ in range(3):
            response = await client.get(f"/reports/2021-06-30/reports/{report_id}", headers=headers)
            report = assert_matches_model(response, reports, "/reports/2021-06-30/reports/{reportId}", "get")
            states.append(report["processingStatus"])
        assert states == ["IN_QUEUE", "IN_PROGRESS", "DONE"]
        document_path = "/reports/2021-06-30/documents/{reportDocumentId}"
        response = await client.get(f"/reports/2021-06-30/documents/{report['reportDocumentId']}", headers=headers)
        document = assert_matches_model(response, reports, document_path, "get")
        assert document["compressionAlgorithm"] == "GZIP"
        download = await client.get(document["url"])
        content = json.loads(gzip.decompress(download.content))
        assert_valid_report(content, schema)
        by_asin = content["salesByAsin" if "Sales" in schema else "inventoryByAsin"]
        assert len({row["startDate"] for row in by_asin}) == (2 if period == "WEEK" else 14)
        unsupported = await client.post(
            "/reports/2021-06-30/reports", json={**specification, "reportType": "GET_NOPE"}, headers=headers
        )
        assert unsupported.status_code == 400
        assert_matches_model(unsupported, reports, "/reports/2021-06-30/reports", "post")
        missing = await client.get("/reports/2021-06-30/reports/123", headers=headers)
        assert missing.status_code == 404
        assert_matches_model(missing, reports, "/reports/2021-06-30/reports/{reportId}", "get")


# ------------------------------------------------------------- rate limits


def test_token_bucket_allows_exact_pacing_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 10, clock)
    assert all(bucket.try_acquire() for _ in range(10))
    assert not bucket.try_acquire()
    for _ in range(1000):
        clock.now += 0.1
        assert bucket.try_acquire()
    assert not bucket.try_acquire()


@pytest.mark.asyncio
async def test_burst_then_429_and_a_paced_client_is_never_throttled() -> None:
    cfg = config(rate_limits_enabled=True, rate_overrides={"getPurchaseOrders": (40.0, 5)})
    async with simulator(cfg) as (client, headers):
        params = {**last_week(), "limit": 1}
        burst = [(await client.get(POS_PATH, params=params, headers=headers)) for _ in range(6)]
        assert [response.status_code for response in burst] == [200] * 5 + [429]
        body = assert_matches_model(burst[-1], ORDERS, POS_PATH, "get")
        assert body == {
            "errors": [
                {
                    "code": "QuotaExceeded",
                    "message": "You exceeded your quota for the requested resource.",
                    "details": "",
                }
            ]
        }
        await asyncio.sleep(0.2)  # refill the burst
        start = time.monotonic()
        statuses = []
        for index in range(30):
            await asyncio.sleep(max(0.0, start + index / 40.0 - time.monotonic()))
            statuses.append((await client.get(POS_PATH, params=params, headers=headers)).status_code)
        assert statuses == [200] * 30
        stats = (await client.get("/_simulator/stats")).json()
        assert stats["throttled"] == 1
        assert stats["requests"]["getPurchaseOrders"] == 36


# ------------------------------------------------------------------ faults


async def fault_run(seed: int, count: int) -> list[int]:
    faults = FaultConfig(throttle=0.1, server_error=0.1, truncated_json=0.1, expired_token=0.1)
    statuses = []
    async with simulator(config(seed=seed, faults=faults)) as (client, headers):
        for _ in range(count):
            response = await client.get(POS_PATH, params={**last_week(), "limit": 2}, headers=headers)
            statuses.append(response.status_code)
            if response.status_code in (403, 429, 500, 503):
                assert_matches_model(response, ORDERS, POS_PATH, "get")
            else:
                assert response.status_code == 200
                try:
                    json.loads(response.content)
                    statuses[-1] = 200
                except ValueError:
                    statuses[-1] = -1  # truncated body
        stats = (await client.get("/_simulator/stats")).json()
    assert sum(stats["faults"].values()) == sum(status != 200 for status in statuses)
    return statuses


@pytest.mark.asyncio
async def test_fault_rates_are_respected_and_seeded() -> None:
    statuses = await fault_run(5, 600)
    counts = Counter(statuses)
    assert 35 <= counts[429] <= 85
    assert 35 <= counts[500] + counts[503] <= 85 and counts[500] and counts[503]
    assert 35 <= counts[-1] <= 85
    assert 35 <= counts[403] <= 85
    assert statuses[:100] == await fault_run(5, 100)


@pytest.mark.asyncio
async def test_timeout_fault_delays_the_answer_and_faults_can_be_replaced() -> None:
    async with simulator(config(faults=FaultConfig(timeout=1.0, timeout_seconds=0.2))) as (client, headers):
        start = time.monotonic()
        slow = await client.get(POS_PATH, params=last_week(), headers=headers)
        assert slow.status_code == 200 and time.monotonic() - start >= 0.2
        replaced = await client.put("/_simulator/faults", json={"server_error": 1.0})
        assert replaced.status_code == 200
        failing = await client.get(POS_PATH, params=last_week(), headers=headers)
        assert failing.status_code in (500, 503)
        assert_matches_model(failing, ORDERS, POS_PATH, "get")
        assert (await client.put("/_simulator/faults", json={"throttle": 2})).status_code == 400
        assert (await client.post("/_simulator/reset")).status_code == 200
        assert (await client.get(POS_PATH, params=last_week(), headers=headers)).status_code == 200
        stats = (await client.get("/_simulator/stats")).json()
        assert stats["faults"] == {"timeout": 1}


# ----------------------------------------------------------------- changes


@pytest.mark.asyncio
async def test_advance_changes_orders_found_by_changed_after() -> None:
    async with simulator(config()) as (client, headers):
        before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        advanced = (await client.post("/_simulator/advance", json={"changed_count": 5})).json()
        changed_numbers = sorted(change["purchaseOrderNumber"] for change in advanced["changed"])
        assert len(changed_numbers) == 5
        window = {"changedAfter": iso(before), "changedBefore": iso(before + timedelta(days=1))}
        orders, _ = await sync_window(client, headers, window)
        assert sorted(order["purchaseOrderNumber"] for order in orders) == changed_numbers
        for order, change in zip(
            sorted(orders, key=lambda o: o["purchaseOrderNumber"]),
            sorted(advanced["changed"], key=lambda c: c["purchaseOrderNumber"]),
            strict=True,
        ):
            assert order["purchaseOrderState"] == change["purchaseOrderState"] != "New"
            assert order["orderDetails"]["purchaseOrderChangedDate"] == advanced["changedAt"]


# ----------------------------------------------------------------- sandbox


def sandbox_cases() -> list[tuple[str, int, dict[str, Any], Any]]:
    return [
        (operation, example.status, example.parameters, example.response)
        for operation in OPERATIONS
        for example in examples(operation)
    ]


@pytest.mark.asyncio
async def test_sandbox_replays_every_static_example() -> None:
    cases = sandbox_cases()
    assert len(cases) >= 25
    async with simulator(config(sandbox=True)) as (client, headers):
        for operation, status, parameters, expected in cases:
            path, method, op = find_operation(operation)
            query = {name: value for name, value in parameters.items() if name != "body"}
            for spec in op["parameters"]:
                if spec["in"] == "path":
                    path = path.replace("{" + spec["name"] + "}", str(query.pop(spec["name"], "any")))
            body = parameters.get("body")
            response = await client.request(
                method.upper(), path, params=query, headers=headers, json=body if body is not None else None
            )
            assert response.status_code == status, (operation, parameters)
            assert response.json() == expected, (operation, parameters)


# ----------------------------------------------------------------- uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_simulator_over_real_http_with_uvicorn() -> None:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_simulator_app(config()), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            headers = await access_token(client)
            response = await client.get(POS_PATH, params=last_week(), headers=headers)
            assert response.status_code == 200
            assert assert_matches_model(response, ORDERS, POS_PATH, "get")["payload"]["orders"]
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 5)
