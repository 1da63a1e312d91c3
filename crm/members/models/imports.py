"""Imports of organisations and contacts from CSV/XLSX: the uploaded file, its check and its result."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.auth.models import User
from crm.extensions import db
from crm.models import TimestampMixin, UTCDateTime, str_enum


class ImportStatus(enum.Enum):
    UPLOADED = "uploaded"  # waiting for the dry run
    CHECKED = "checked"  # dry run clean: waiting for confirmation
    REFUSED = "refused"  # dry run found errors: nothing will be written
    CONFIRMED = "confirmed"  # waiting for the import job
    IMPORTED = "imported"
    FAILED = "failed"


class ImportBatch(TimestampMixin, db.Model):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus), default=ImportStatus.UPLOADED, index=True)
    total_rows: Mapped[int] = mapped_column(default=0)
    # [{"row": 7, "field": "orgnr", "message": "..."}], row numbers as in the spreadsheet (header = row 1)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    summary: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])

    @property
    def in_progress(self) -> bool:
        return self.status in (ImportStatus.UPLOADED, ImportStatus.CONFIRMED)
