"""HeldLease: a concurrency slot held for the length of an `async with` block.

    async with client.lease("uploads", key) as held:   # errors.LeaseDenied if no slot is free
        ...                                              # held.lease: the id; held.lost: why it ended early

    enter: ACQUIRE -> denied: LeaseDenied (nothing held)
                   -> allowed: a background task RENEWs every lease/3 (window / 3)
    exit (normal, exception or cancellation): the renewer stops, RELEASE

An ACQUIRE cancelled in flight may still be granted: its answer is awaited in the
background and the lease released. A RELEASE is never cut short by a cancellation
of the block's task: it runs on, shielded. A RENEW answered LEASE_UNKNOWN (the lease
expired, the key was reset, or the connection that took it closed, which releases
it) stops the renewer and sets `lost`; the block is not interrupted. Errors of the
exit's RELEASE are logged on the `rlimit` logger and kept in `release_error`, never
raised over the block's own outcome. A lease of id 0 (an exempt key, a shadow-mode
pass) holds nothing: no RENEW, no RELEASE.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .calls import Key
from .decision import Lease
from .errors import LeaseDenied, LeaseUnknown, RateLimitError

if TYPE_CHECKING:
    from .aio import AsyncClient

log = logging.getLogger("rlimit")
RENEW_FRACTION = 3  # renew every lease / RENEW_FRACTION
_background: set[asyncio.Task[object]] = set()  # releases still running after their caller left


def in_background(task: asyncio.Task[object]) -> None:
    """Keeps task referenced until it ends (asyncio holds tasks weakly); its failure is logged."""
    _background.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[object]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("rlimit: a background lease call failed: %s", task.exception())


class HeldLease:
    """An async context manager holding slots of key under a concurrency policy."""

    def __init__(self, client: AsyncClient, policy: str, key: Key, slots: int = 1, *,
                 renew: bool = True, detach: bool = False) -> None:
        self.client = client  # the daemon connection the lease is taken over
        self.policy = policy  # the concurrency policy
        self.key = key  # the key whose slots are held
        self.slots = slots  # slots held
        self.renew = renew  # renew in the background while held
        self.detach = detach  # ACQUIRE with DETACH: the lease survives the connection
        self.decision: Lease | None = None  # the ACQUIRE's answer, then the last RENEW's
        self.renewals = 0  # RENEWs answered OK
        self.lost: RateLimitError | None = None  # set when a RENEW found the lease gone
        self.release_error: RateLimitError | None = None  # the exit's RELEASE failure, if any
        self._renewer: asyncio.Task[None] | None = None  # the background renew loop
        self._released = False  # RELEASE sent (or nothing to release)

    @property
    def lease(self) -> int:
        """The lease id (0 before ACQUIRE answered, or when nothing is held)."""
        return self.decision.lease if self.decision is not None else 0

    async def __aenter__(self) -> HeldLease:
        task = asyncio.ensure_future(self.client.acquire(self.policy, self.key, self.slots, detach=self.detach))
        try:
            decision = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._release_late)
            raise
        if not decision.allowed:
            self._released = True
            raise LeaseDenied(self.policy, decision)
        self.decision = decision
        if self.renew and decision.lease and decision.window > 0:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(decision.window))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()

    async def release(self) -> None:
        """Stops renewing and releases the lease (once; later calls do nothing)."""
        if self._released:
            return
        self._released = True
        if self._renewer is not None:
            self._renewer.cancel()
        if not self.lease or self.lost is not None:
            return
        task = asyncio.get_running_loop().create_task(
            self.client.release(self.policy, self.key, self.lease))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            in_background(task)  # type: ignore[arg-type]
            raise
        except LeaseUnknown as exc:  # expired meanwhile: nothing was held any more
            self.release_error = exc
        except RateLimitError as exc:
            self.release_error = exc
            log.warning("rlimit: RELEASE of lease %d under policy %r failed: %s", self.lease, self.policy, exc)

    async def _renew_loop(self, window: float) -> None:
        while True:
            await asyncio.sleep(window / RENEW_FRACTION)
            try:
                self.decision = await self.client.renew(self.policy, self.key, self.lease)
                self.renewals += 1
            except LeaseUnknown as exc:
                self.lost = exc
                log.warning("rlimit: lease %d under policy %r is no longer held (expired, reset, or "
                            "its connection closed)", self.lease, self.policy)
                return
            except RateLimitError as exc:  # transient: try again at the next interval
                log.warning("rlimit: RENEW of lease %d under policy %r failed: %s", self.lease, self.policy, exc)

    def _release_late(self, task: asyncio.Future[Lease]) -> None:
        """Releases a lease granted to an ACQUIRE whose caller was cancelled meanwhile."""
        if task.cancelled() or task.exception() is not None:
            return
        decision = task.result()
        if decision.allowed and decision.lease:
            in_background(asyncio.get_running_loop().create_task(  # type: ignore[arg-type]
                self.client.release(self.policy, self.key, decision.lease)))
