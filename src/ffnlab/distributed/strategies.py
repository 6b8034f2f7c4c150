"""FSDP2 as a Lightning strategy: ModelParallelStrategy with every process data-parallel (trainer=fsdp).

Lightning 2.6's FSDPStrategy (FSDP1) refuses CPUs; ModelParallelStrategy applies whatever `configure_model` does
(here `fully_shard`, see LanguageModel.configure_model) and trains on gloo too. Its `data_parallel_size: auto` means
the node count (tensor parallelism inside a node); ffnlab shards over every process instead.
"""

from __future__ import annotations

from lightning.pytorch.strategies import ModelParallelStrategy


class FullyShardedStrategy(ModelParallelStrategy):
    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()
