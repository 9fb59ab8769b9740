"""Beyond one machine: models sharded with FSDP2 and sharded checkpoints.

Sits on the model and checkpoint stages. ``shard_model`` builds a spec on the meta device,
shards it unit by unit (the spec's blocks or stages) over a device mesh and lets each rank
allocate and initialise only its own shards, with the same weights as ``build_model`` under the
same seed. ``save_sharded`` writes model, optimizer, scheduler and RNG states from every rank
into one self-describing directory (torch.distributed.checkpoint, written atomically, hashed);
``load_sharded`` reads it back into any number of ranks, one process without a process group
included; ``consolidate`` turns it into one single-file checkpoint::

    dist.init_process_group("nccl")                      # torchrun --nproc-per-node 8 train.py
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"])) # with GPUs; "gloo" and no device on CPUs
    model = shard_model("configs/v1.yaml")               # FSDP2, one unit per block
    optimizer = torch.optim.AdamW(model.parameters())
    ...
    save_sharded(model, "run/step_1000", optimizer=optimizer, step=1000)
    load_sharded(model, "run/step_1000", optimizer)      # resume, on as many or other ranks
    consolidate("run/step_1000", "run/final.pth")        # one file for load_model
"""

from ._consolidate import consolidate
from ._load import load_sharded, load_sharded_model, read_sharded_metadata
from ._manifest import FORMAT_VERSION as SHARDED_FORMAT_VERSION
from ._manifest import ShardedCheckpointMetadata
from ._save import save_sharded
from ._shard import shard_model
from ._units import GRANULARITIES, Granularity, sharding_units

__all__ = [
    "GRANULARITIES",
    "SHARDED_FORMAT_VERSION",
    "Granularity",
    "ShardedCheckpointMetadata",
    "consolidate",
    "load_sharded",
    "load_sharded_model",
    "read_sharded_metadata",
    "save_sharded",
    "shard_model",
    "sharding_units",
]
