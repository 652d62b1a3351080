"""Write ledger entries, invoices, payments, payment lines and refund cases directly (no import pipeline)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.ledger.models import Import, Invoice, LedgerEntry, Payment, PaymentLine
from acorn_api.reconciliation import service
from acorn_api.refunds.models import RefundCase

D = Decimal
DAY0 = date(2026, 1, 5)


@dataclass
class Ledger:
    """One account's ledger, written row by row; amounts follow the ledger's sign convention."""

    session: AsyncSession
    account_id: uuid.UUID
    current_import: uuid.UUID | None = None
    _n: int = field(default=0)

    def _key(self) -> str:
        self._n += 1
        return f"k{self._n}-{uuid.uuid4().hex[:8]}"

    async def new_import(self) -> uuid.UUID:
        imp = Import(
            id=uuid.uuid4(),
            account_id=self.account_id,
            report_type="remittance",
            status="succeeded",
            sha256=uuid.uuid4().hex * 2,
            size_bytes=1,
        )
        self.session.add(imp)
        await self.session.flush()
        self.current_import = imp.id
        return imp.id

    async def entry(
        self,
        entry_type: str,
        invoice_number: str | None,
        amount: str | Decimal,
        *,
        currency: str = "USD",
        on: date = DAY0,
        due_on: date | None = None,
        payment_number: str | None = None,
        po_number: str | None = None,
        asin: str | None = None,
        store_id: uuid.UUID | None = None,
        vendor_code: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        e = LedgerEntry(
            id=uuid.uuid4(),
            account_id=self.account_id,
            entry_type=entry_type,
            amount=D(amount),
            currency=currency,
            occurred_on=on,
            due_on=due_on,
            invoice_number=invoice_number,
            payment_number=payment_number,
            po_number=po_number,
            asin=asin,
            store_id=store_id,
            vendor_code=vendor_code,
            source_import_id=self.current_import,
            raw=raw or {},
            natural_key=self._key(),
        )
        self.session.add(e)
        await self.session.flush()
        return e

    async def invoice(
        self,
        number: str,
        amount: str | Decimal,
        *,
        currency: str = "USD",
        on: date = DAY0,
        terms_days: int = 30,
        po_number: str | None = None,
        store_id: uuid.UUID | None = None,
        vendor_code: str | None = "ACME1",
        with_row: bool = True,
    ) -> LedgerEntry:
        due = on + timedelta(days=terms_days)
        e = await self.entry(
            "invoice",
            number,
            amount,
            currency=currency,
            on=on,
            due_on=due,
            po_number=po_number,
            store_id=store_id,
            vendor_code=vendor_code,
        )
        if with_row:
            self.session.add(
                Invoice(
                    id=uuid.uuid4(),
                    account_id=self.account_id,
                    invoice_number=number,
                    invoice_date=on,
                    due_on=due,
                    po_number=po_number,
                    vendor_code=vendor_code,
                    store_id=store_id,
                    amount=D(amount),
                    currency=currency,
                    source="import",
                    source_import_id=self.current_import,
                    ledger_entry_id=e.id,
                )
            )
            await self.session.flush()
        return e

    async def payment(
        self,
        number: str,
        *,
        currency: str = "USD",
        on: date = DAY0 + timedelta(days=30),
        payment_currency: str | None = None,
        exchange_rate: str | None = None,
        amount: str | None = None,
    ) -> Payment:
        p = Payment(
            id=uuid.uuid4(),
            account_id=self.account_id,
            payment_number=number,
            payment_date=on,
            amount=D(amount) if amount else None,
            currency=currency,
            payment_currency=payment_currency,
            exchange_rate=D(exchange_rate) if exchange_rate else None,
            source_import_id=self.current_import,
        )
        self.session.add(p)
        await self.session.flush()
        return p

    async def paid(
        self,
        payment_number: str,
        invoice_number: str,
        amount: str | Decimal,
        *,
        currency: str = "USD",
        on: date = DAY0 + timedelta(days=30),
        po_number: str | None = None,
    ) -> LedgerEntry:
        """A remittance line paying ``amount`` on an invoice: a payment entry and its payment line."""
        e = await self.entry(
            "payment",
            invoice_number,
            -D(amount),
            currency=currency,
            on=on,
            payment_number=payment_number,
            po_number=po_number,
        )
        self.session.add(
            PaymentLine(
                id=uuid.uuid4(),
                account_id=self.account_id,
                payment_number=payment_number,
                invoice_number=invoice_number,
                entry_type="payment",
                currency=currency,
                amount_paid=D(amount),
                ledger_entry_id=e.id,
                source_import_id=self.current_import,
                natural_key=self._key(),
            )
        )
        await self.session.flush()
        return e

    async def case(
        self,
        origin: LedgerEntry,
        *,
        status: str = "open",
        case_type: str = "shortage",
        recovered: str = "0",
        written_off: str = "0",
        deadline: date | None = None,
        dispute_count: int = 0,
    ) -> RefundCase:
        c = RefundCase(
            id=uuid.uuid4(),
            account_id=self.account_id,
            origin_entry_id=origin.id,
            origin_entry_type=origin.entry_type,
            type=case_type,
            status=status,
            amount=-origin.amount,
            currency=origin.currency,
            recovered_amount=D(recovered),
            written_off_amount=D(written_off),
            invoice_number=origin.invoice_number,
            opened_on=origin.occurred_on,
            dispute_deadline=deadline,
            dispute_count=dispute_count,
        )
        self.session.add(c)
        await self.session.flush()
        return c

    async def match(self, import_id: uuid.UUID | None = None) -> service.MatchResult:
        return await service.match(self.session, self.account_id, import_id)
