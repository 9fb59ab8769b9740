"""Who this process is among the ranks, and the few collectives sharded checkpoints need.

Everything here also works without a process group: one process is rank 0 of 1, and
``Ranks.alone()`` treats even a member of a group as alone (consolidation runs on one rank).
Objects travel with ``torch.distributed``'s object collectives (pickled between this job's own
processes, never read from a file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import torch.distributed as dist

from ..errors import CheckpointError

__all__ = ["Ranks"]

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's rank and the world size, with collectives that degrade to no-ops."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @classmethod
    def current(cls) -> Ranks:
        """The default process group's view, or rank 0 of 1 when there is none."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), True)
        return cls()

    @classmethod
    def alone(cls) -> Ranks:
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        box: list[object] = [value]
        dist.broadcast_object_list(box, src=0)
        return cast(T, box[0])

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return cast(list[T], out)

    def on_main(self, task: Callable[[], T]) -> T:
        """Run ``task`` on rank 0 only and return its result on every rank.

        A failure on rank 0 is raised on every rank (rank 0 raises the original error), so no
        rank is left waiting for one that gave up.
        """
        result: T | None = None
        failure: BaseException | None = None
        if self.is_main:
            try:
                result = task()
            except Exception as exc:
                failure = exc
        shared = self.broadcast((result, None if failure is None else f"{failure}"))
        if failure is not None:
            raise failure
        if shared[1] is not None:
            raise CheckpointError(f"rank 0 failed: {shared[1]}")
        return cast(T, shared[0])

    def agree(self, problems: list[str]) -> None:
        """Raise on every rank if any rank found a problem (each listed with its rank)."""
        everyone = self.gather(problems)
        found = [
            f"rank {rank}: {p}" if self.distributed else p
            for rank, listed in enumerate(everyone)
            for p in listed
        ]
        if found:
            raise CheckpointError("; ".join(found))
