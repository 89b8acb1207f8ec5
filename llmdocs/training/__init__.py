"""Training utilities: seeding, devices, schedules, the loop, metrics, checkpoints and DDP helpers.

Everything a chapter needs to train a model is importable from here:

```
from llmdocs.training import TrainConfig, train, plot_history, save_checkpoint, load_checkpoint
```

Training scripts also check their run folder with [run_folder][llmdocs.training.run_folder]: one run per
``--out-dir``, and ``--resume`` refuses settings other than the run's.
"""

from llmdocs.training.batch import mean_loss, move_to_device
from llmdocs.training.checkpoint import (
    checkpoint_info,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from llmdocs.training.config import RESUME_MAY_CHANGE, TrainConfig
from llmdocs.training.distributed import (
    DistributedInfo,
    cleanup_distributed,
    get_rank,
    get_world_size,
    is_main_process,
    setup_distributed,
    unwrap_model,
)
from llmdocs.training.loop import train
from llmdocs.training.metrics import append_jsonl, plot_history, read_jsonl, write_csv, write_jsonl
from llmdocs.training.optim import build_adamw, build_scheduler
from llmdocs.training.schedules import (
    inverse_sqrt,
    inverse_sqrt_lambda,
    lambda_scheduler,
    warmup_cosine,
    warmup_cosine_lambda,
)
from llmdocs.training.seed import resolve_device, rng_state, seed_everything, set_rng_state

__all__ = [
    "RESUME_MAY_CHANGE",
    "DistributedInfo",
    "TrainConfig",
    "append_jsonl",
    "build_adamw",
    "build_scheduler",
    "checkpoint_info",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "inverse_sqrt",
    "inverse_sqrt_lambda",
    "is_main_process",
    "lambda_scheduler",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "mean_loss",
    "move_to_device",
    "plot_history",
    "read_jsonl",
    "resolve_device",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "setup_distributed",
    "train",
    "unwrap_model",
    "warmup_cosine",
    "warmup_cosine_lambda",
    "write_csv",
    "write_jsonl",
]
