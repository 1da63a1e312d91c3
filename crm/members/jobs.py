"""Background jobs of the member register: checking and running imports. Safe to run twice."""

from __future__ import annotations

import logging

from crm.extensions import db
from crm.members.models import ImportBatch

logger = logging.getLogger(__name__)


def check_import(batch_id: int) -> None:
    from crm.members.imports import check_batch

    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        return
    check_batch(batch)
    db.session.commit()


def run_import(batch_id: int) -> None:
    from crm.members.imports import import_batch

    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        return
    import_batch(batch)
    db.session.commit()
