"""HTTP for /v1/stores: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from acorn_api.core.db import Session
from acorn_api.core.errors import problems
from acorn_api.core.http import IfMatch
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.pagination import Page, Pagination
from acorn_api.core.regions import Marketplace, Region
from acorn_api.stores import service
from acorn_api.stores.auth import StoresRead, StoresWrite
from acorn_api.stores.schemas import StoreCreate, StoreDeleted, StoreOut, StoreStatus, StoreUpdate

router = APIRouter(prefix="/v1/stores", tags=["stores"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a store",
    operation_id="create_store",
    responses=problems(403, 409),
)
async def create_store(body: StoreCreate, caller: StoresWrite, session: Session, idem: IdempotencyDep) -> StoreOut:
    return await idem.run(caller.account_id, StoreOut, lambda: service.create(session, caller, body))


@router.get("", summary="List stores", operation_id="list_stores", responses=problems(403))
async def list_stores(
    caller: StoresRead,
    session: Session,
    page: Pagination,
    status_: Annotated[StoreStatus | None, Query(alias="status")] = None,
    region: Region | None = None,
    marketplace: Marketplace | None = None,
    vendor_code: Annotated[str | None, Query(max_length=32)] = None,
    code: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[StoreOut]:
    result = await service.list_page(
        session,
        caller,
        page,
        status=status_.value if status_ else None,
        region=region.value if region else None,
        marketplace=marketplace.value if marketplace else None,
        vendor_code=vendor_code,
        code=code,
    )
    return Page.of(result, StoreOut.model_validate)


@router.get("/{store_id}", summary="Get a store", operation_id="get_store", responses=problems(403, 404))
async def get_store(store_id: uuid.UUID, caller: StoresRead, session: Session, response: Response) -> StoreOut:
    store = await service.get_row(session, caller, store_id)
    response.headers["ETag"] = f'"{store["version"]}"'
    return StoreOut.model_validate(store)


@router.patch(
    "/{store_id}",
    summary="Change a store",
    description="Send only the fields to change. Pass the `version` you read (or `If-Match`) to refuse "
    "lost updates with 409.",
    operation_id="update_store",
    responses=problems(403, 404, 409, 412),
)
async def update_store(
    store_id: uuid.UUID, body: StoreUpdate, caller: StoresWrite, session: Session, if_match: IfMatch, response: Response
) -> StoreOut:
    store = await service.update(session, caller, store_id, body, if_match=if_match)
    response.headers["ETag"] = f'"{store.version}"'
    return StoreOut.model_validate(store)


@router.delete(
    "/{store_id}",
    summary="Delete or archive a store",
    description="Removes the store, or archives it (status `archived`) when other data still refers to it.",
    operation_id="delete_store",
    responses=problems(403, 404),
)
async def delete_store(store_id: uuid.UUID, caller: StoresWrite, session: Session) -> StoreDeleted:
    archived = await service.delete(session, caller, store_id)
    if archived is None:
        return StoreDeleted(id=store_id, deleted=True, store=None)
    return StoreDeleted(id=store_id, deleted=False, store=StoreOut.model_validate(archived))
