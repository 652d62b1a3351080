"""HTTP for /v1/items: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from acorn_api.catalog import service
from acorn_api.catalog.auth import ItemsRead, ItemsWrite
from acorn_api.catalog.schemas import ItemCreate, ItemOut, ItemStatus, ItemUpdate
from acorn_api.core.db import Session
from acorn_api.core.errors import problems
from acorn_api.core.http import IfMatch
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.pagination import Page, Pagination

router = APIRouter(prefix="/v1/items", tags=["items"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an item",
    description="ASIN and vendor SKU are each unique within the account (409 naming the field). "
    "EAN-13 and UPC-A codes are checked against their GS1 check digit.",
    operation_id="create_item",
    responses=problems(400, 403, 409),
)
async def create_item(body: ItemCreate, caller: ItemsWrite, session: Session, idem: IdempotencyDep) -> ItemOut:
    return await idem.run(caller.account_id, ItemOut, lambda: service.create(session, caller, body))


@router.get(
    "",
    summary="List items",
    description="Filters combine with AND. `q` is a case-insensitive substring search over title and brand "
    "(served by trigram indexes).",
    operation_id="list_items",
    responses=problems(403),
)
async def list_items(
    caller: ItemsRead,
    session: Session,
    page: Pagination,
    asin: Annotated[str | None, Query(max_length=10)] = None,
    vendor_sku: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[ItemStatus | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="text in title or brand")] = None,
) -> Page[ItemOut]:
    result = await service.list_page(
        session,
        caller,
        page,
        asin=asin.strip().upper() if asin else None,
        vendor_sku=vendor_sku,
        status=status_.value if status_ else None,
        q=q,
    )
    return Page.of(result, ItemOut.model_validate)


@router.get("/{item_id}", summary="Get an item", operation_id="get_item", responses=problems(403, 404))
async def get_item(item_id: uuid.UUID, caller: ItemsRead, session: Session, response: Response) -> ItemOut:
    item = await service.get(session, caller, item_id)
    response.headers["ETag"] = f'"{item.version}"'
    return ItemOut.model_validate(item)


@router.patch(
    "/{item_id}",
    summary="Change an item",
    description="Send only the fields to change. Pass the `version` you read (or `If-Match`) to refuse "
    "lost updates with 409.",
    operation_id="update_item",
    responses=problems(400, 403, 404, 409, 412),
)
async def update_item(
    item_id: uuid.UUID, body: ItemUpdate, caller: ItemsWrite, session: Session, if_match: IfMatch, response: Response
) -> ItemOut:
    item = await service.update(session, caller, item_id, body, if_match=if_match)
    response.headers["ETag"] = f'"{item.version}"'
    return ItemOut.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an item",
    description="Only an item no quote refers to can be deleted (409 `item-in-use`); discontinue it otherwise.",
    operation_id="delete_item",
    responses=problems(403, 404, 409),
)
async def delete_item(item_id: uuid.UUID, caller: ItemsWrite, session: Session) -> Response:
    await service.delete(session, caller, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
