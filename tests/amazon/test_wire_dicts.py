"""The sync's wire dicts (``wire.*Data``) accept and reject exactly what the wire models do, with the same values.

A sync validates each page once into plain dicts instead of model instances (a tenth of the cost); these tests
keep the two descriptions of Amazon's shapes from drifting apart: same wire names and required fields for every
pair, and the same result (or the same refusal) for the simulator's pages, unknown fields and bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Required, cast, get_origin

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import get_type_hints, is_typeddict

from acorn_api.amazon import sync, wire
from acorn_sim import SimulatorConfig
from acorn_sim.data import DataSet, order_json, shipment_json, status_json

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)


def _pairs() -> list[tuple[type[Any], type[BaseModel]]]:
    pairs = []
    for name, value in vars(wire).items():
        if name.endswith("Data") and is_typeddict(value):
            model = getattr(wire, name.removesuffix("Data"))
            pairs.append((value, model))
    return pairs


PAIRS = _pairs()
PAGES = [
    (wire.GetPurchaseOrdersResponse, wire.PURCHASE_ORDERS_PAGE, "orders", order_json),
    (wire.GetPurchaseOrdersStatusResponse, wire.PURCHASE_ORDERS_STATUS_PAGE, "ordersStatus", status_json),
    (wire.GetShipmentDetailsResponse, wire.SHIPMENT_DETAILS_PAGE, "shipments", shipment_json),
]


def test_every_response_shape_the_sync_reads_has_a_dict_twin() -> None:
    models = {model for _, model in PAIRS}
    assert {wire.GetPurchaseOrdersResponse, wire.GetPurchaseOrdersStatusResponse, wire.GetShipmentDetailsResponse} <= (
        models
    )
    assert len(PAIRS) >= 25


@pytest.mark.parametrize(("data", "model"), PAIRS, ids=[model.__name__ for _, model in PAIRS])
def test_dict_twin_has_the_models_wire_names_and_required_fields(data: type[Any], model: type[BaseModel]) -> None:
    aliases = {field.alias or name for name, field in model.model_fields.items()}
    required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
    hints = get_type_hints(data, include_extras=True)
    assert set(hints) == aliases
    assert {key for key, hint in hints.items() if cast(object, get_origin(hint)) is Required} == required
    assert TypeAdapter(data).core_schema is not None  # pydantic can build it (types resolve)


def _page(orders: int, seed: int) -> DataSet:
    return DataSet(SimulatorConfig(seed=seed, purchase_orders=orders, history_days=30, anchor=ANCHOR))


@pytest.mark.parametrize("seed", [1, 7, 42])
@pytest.mark.parametrize(("model", "adapter", "key", "render"), PAGES, ids=["orders", "statuses", "shipments"])
def test_simulator_pages_validate_to_the_same_values(
    model: type[BaseModel], adapter: TypeAdapter[Any], key: str, render: Any, seed: int
) -> None:
    data = _page(60, seed)
    body = orjson.dumps({"payload": {"pagination": {"nextToken": "t1"}, key: [render(po) for po in data.orders]}})
    as_model = model.model_validate_json(body)
    as_dicts = adapter.validate_json(body)
    assert as_model.model_dump(by_alias=True, exclude_unset=True) == as_dicts
    assert len(as_dicts["payload"][key]) == 60


def test_unknown_fields_decimals_naive_and_offset_times_are_kept_alike() -> None:
    po = order_json(_page(1, 3).orders[0])
    po["brandNewField"] = {"x": [1, 2]}
    po["orderDetails"]["items"][0]["netCost"] = {"currencyCode": "USD", "amount": "1234567890.123456789", "y": 1}
    po["orderDetails"]["purchaseOrderDate"] = "2026-01-02T10:00:00"
    po["orderDetails"]["purchaseOrderChangedDate"] = "2026-01-02T12:00:00+02:00"
    body = orjson.dumps({"payload": {"orders": [po]}})
    as_model = wire.GetPurchaseOrdersResponse.model_validate_json(body)
    as_dicts: Any = wire.PURCHASE_ORDERS_PAGE.validate_json(body)
    assert as_model.model_dump(by_alias=True, exclude_unset=True) == as_dicts
    order = as_dicts["payload"]["orders"][0]
    assert order["brandNewField"] == {"x": [1, 2]}
    item = order["orderDetails"]["items"][0]
    assert item["netCost"]["amount"] == Decimal("1234567890.123456789")
    assert order["orderDetails"]["purchaseOrderChangedDate"] == datetime(2026, 1, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda po: po.pop("purchaseOrderNumber"),
        lambda po: po["orderDetails"].update(purchaseOrderDate="yesterday"),
        lambda po: po["orderDetails"]["items"][0].update(orderedQuantity={"amount": "many"}),
        lambda po: po["orderDetails"]["items"][0]["netCost"].update(amount="ten"),
        lambda po: po["orderDetails"]["sellingParty"].pop("partyId"),
        lambda po: po["orderDetails"].update(items={"not": "a list"}),
    ],
    ids=["no number", "bad date", "bad quantity", "bad amount", "party without id", "items not a list"],
)
def test_what_the_models_refuse_the_dicts_refuse(mutate: Any) -> None:
    po = order_json(_page(1, 5).orders[0])
    mutate(po)
    body = orjson.dumps({"payload": {"orders": [po]}})
    with pytest.raises(ValidationError):
        wire.GetPurchaseOrdersResponse.model_validate_json(body)
    with pytest.raises(ValidationError):
        wire.PURCHASE_ORDERS_PAGE.validate_json(body)


def test_rows_come_straight_from_the_dicts() -> None:
    po = order_json(_page(1, 9).orders[0])
    po["orderDetails"]["shipWindow"] = "2026-03-02T08:00:00Z--2026-03-05T17:00:00Z"
    po["orderDetails"]["items"] = [
        {
            "itemSequenceNumber": "1",
            "amazonProductIdentifier": "B0001",
            "orderedQuantity": {"amount": 3, "unitOfMeasure": "Cases", "unitSize": 6},
            "netCost": {"currencyCode": "USD", "amount": "10.10"},
            "listPrice": {"currencyCode": "USD", "amount": "19.99"},
        },
        {"itemSequenceNumber": "2", "orderedQuantity": {"amount": 2}, "netCost": {"amount": "0.05"}},
    ]
    body = orjson.dumps({"payload": {"orders": [po]}})
    page = wire.PURCHASE_ORDERS_PAGE.validate_json(body)["payload"]
    assert page is not None
    headers, items = sync.order_rows(page["orders"])
    [header] = headers
    assert header["purchase_order_number"] == po["purchaseOrderNumber"]
    assert header["currency"] == "USD"
    assert header["total_net_cost"] == "30.40"  # 3 x 10.10 + 2 x 0.05
    assert header["ship_window_start"] == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert header["ship_window_end"] - header["ship_window_start"] == timedelta(days=3, hours=9)
    assert header["vendor_code"] == po["orderDetails"]["sellingParty"]["partyId"]
    assert [(i["item_sequence_number"], i["net_cost"], i["list_price"], i["currency"]) for i in items] == [
        ("1", "10.10", "19.99", "USD"),
        ("2", "0.05", None, None),
    ]
    assert items[0]["unit_of_measure"] == "Cases" and items[0]["unit_size"] == 6
