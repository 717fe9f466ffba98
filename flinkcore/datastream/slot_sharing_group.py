"""``SlotSharingGroup``: names a group of operators that may share a task slot.

As in Flink, operators of different groups never share a slot: in the worker-process runtime
each group gets its own worker processes (a job with several groups runs in worker processes
even at parallelism 1), and an operator that names no group takes its inputs' common group,
else ``"default"``. The resources a group declares (CPU cores, memory) are recorded on the job
graph but not enforced: a worker process is one Python interpreter, bounded by the machine.
"""

from __future__ import annotations

__all__ = ["SlotSharingGroup"]


class SlotSharingGroup:
    def __init__(
        self, name: str, cpu_cores: float | None = None, task_heap_memory_mb: int | None = None
    ) -> None:
        self.name = name
        self.cpu_cores = cpu_cores
        self.task_heap_memory_mb = task_heap_memory_mb
        self.task_off_heap_memory_mb: int | None = None
        self.managed_memory_mb: int | None = None

    def get_name(self) -> str:
        return self.name

    @staticmethod
    def builder(name: str) -> SlotSharingGroup.Builder:
        return SlotSharingGroup.Builder(name)

    class Builder:
        def __init__(self, name: str) -> None:
            self._group = SlotSharingGroup(name)

        def set_cpu_cores(self, cpu_cores: float) -> SlotSharingGroup.Builder:
            self._group.cpu_cores = cpu_cores
            return self

        def set_task_heap_memory_mb(self, mb: int) -> SlotSharingGroup.Builder:
            self._group.task_heap_memory_mb = mb
            return self

        def set_task_off_heap_memory_mb(self, mb: int) -> SlotSharingGroup.Builder:
            self._group.task_off_heap_memory_mb = mb
            return self

        def set_managed_memory_mb(self, mb: int) -> SlotSharingGroup.Builder:
            self._group.managed_memory_mb = mb
            return self

        def build(self) -> SlotSharingGroup:
            return self._group

    def __repr__(self) -> str:
        return f"SlotSharingGroup({self.name!r})"
