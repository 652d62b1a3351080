"""Access to the vendored official SP-API models (Apache-2.0, see spec/SOURCE.md)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SPEC_FILES = (
    "vendorOrders.json",
    "vendorShipments.json",
    "vendorInvoices.json",
    "vendorTransactionStatus.json",
    "reports_2021-06-30.json",
    "vendorSalesReport.json",
    "vendorInventoryReport.json",
)

# simulator operation name -> (model file, operationId in that model)
OPERATIONS: dict[str, tuple[str, str]] = {
    "getPurchaseOrders": ("vendorOrders.json", "getPurchaseOrders"),
    "getPurchaseOrder": ("vendorOrders.json", "getPurchaseOrder"),
    "submitAcknowledgement": ("vendorOrders.json", "submitAcknowledgement"),
    "getPurchaseOrdersStatus": ("vendorOrders.json", "getPurchaseOrdersStatus"),
    "getShipmentDetails": ("vendorShipments.json", "GetShipmentDetails"),
    "submitInvoices": ("vendorInvoices.json", "submitInvoices"),
    "getTransaction": ("vendorTransactionStatus.json", "getTransaction"),
    "createReport": ("reports_2021-06-30.json", "createReport"),
    "getReport": ("reports_2021-06-30.json", "getReport"),
    "getReportDocument": ("reports_2021-06-30.json", "getReportDocument"),
}


def spec_bytes(name: str) -> bytes:
    return resources.files(__name__.rpartition(".")[0]).joinpath("spec", name).read_bytes()


@cache
def load_spec(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(spec_bytes(name))
    return document


def find_operation(operation: str) -> tuple[str, str, dict[str, Any]]:
    """(path, method, operation object) of a simulator operation in its model."""
    file_name, operation_id = OPERATIONS[operation]
    for path, methods in load_spec(file_name)["paths"].items():
        for method, op in methods.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return path, method, op
    raise KeyError(operation)
