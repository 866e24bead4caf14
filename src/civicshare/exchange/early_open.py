"""Opening a transfer while its parts still arrive: the early opening, one at a time per transfer.

The first part of a transfer starts a thread that does the commit's own work under the commit's
lock: it reads the parts in order (in memory from the requests that bring them, through a
:class:`~civicshare.exchange.handoff.Handoff`, or from the staging area), decrypts, re-seals and
stores the holding, and signs the receipt, so the commit finds the work done. On any failure (a
part that stops coming for ``PATIENCE`` seconds, a refusal, a crash) nothing is kept and the commit
opens the staged parts as usual; the parts it held in memory are asked for again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog

from civicshare.errors import CivicshareError
from civicshare.exchange.handoff import Budget, Handoff
from civicshare.exchange.staging import PartsLate
from civicshare.exchange.transfers import RECEIVING

if TYPE_CHECKING:
    from civicshare.exchange.inbox import Inbox

# An early opening gives up when the next part has not arrived for this long; the commit then opens.
PATIENCE = 30.0

log = structlog.get_logger("civicshare.inbox")


class EarlyOpenings:
    """The early openings running in this process, by (organisation, transfer)."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._running: dict[tuple[str, str], Handoff] = {}
        self._lock = threading.Lock()
        self.budget = Budget()  # what all of them may hold in memory at once

    @property
    def running(self) -> int:
        """How many early openings are running now."""
        with self._lock:
            return len(self._running)

    def handoff(self, org_id: str, transfer: str) -> Handoff | None:
        """Where the requests hand parts of ``transfer`` to its running early opening, if one runs."""
        with self._lock:
            return self._running.get((org_id, transfer))

    def start(self, org_id: str, sender: str, transfer: str) -> bool:
        """Begin an early opening of ``transfer``; False if one is already running."""
        key = (org_id, transfer)
        with self._lock:
            if key in self._running:
                return False
            handoff = self._running[key] = Handoff(budget=self.budget)
        thread = threading.Thread(target=self._run, args=(org_id, sender, transfer, handoff), daemon=True,
                                  name="civicshare-open-early")
        try:
            thread.start()
        except BaseException:
            self._end(key, handoff)
            raise
        return True

    def _end(self, key: tuple[str, str], handoff: Handoff) -> None:
        with self._lock:
            self._running.pop(key, None)
        handoff.close()

    def _run(self, org_id: str, sender: str, transfer: str, handoff: Handoff) -> None:
        inbox = self._inbox
        try:
            row = inbox.mine(org_id, sender, transfer)
            if row.state != RECEIVING:
                return
            with inbox.staging.locked(org_id, row.transfer_id):
                row = inbox.mine(org_id, sender, row.transfer_id)  # as it is now, under the lock
                if row.state != RECEIVING:
                    return
                handoff.begin()  # only now may requests hand it parts (see Handoff.begin)
                manifest = row.manifest
                with inbox.staging.reader(org_id, row.transfer_id, manifest.part_count, patience=PATIENCE,
                                          handoff=handoff, hashes=manifest.part_hashes) as reader:
                    row = inbox.open_into_holding(row, manifest, reader, parts_verified=True)
            inbox.staging.finished(org_id, row.transfer_id)
        except PartsLate:
            log.info("early opening gave up waiting for a part", transfer=transfer)
        except CivicshareError as exc:
            # Refusals were logged and recorded by the opening; the sender learns of them on its next request.
            log.info("early opening refused", transfer=transfer, code=exc.code)
        except Exception as exc:  # noqa: BLE001 - the commit will open the staged parts instead
            log.warning("early opening failed", transfer=transfer, error=type(exc).__name__, detail=str(exc)[:200])
        finally:
            self._end((org_id, transfer), handoff)
