"""Data-parallel training: `torchrun --nproc_per_node 2` on CPU (gloo) agrees with one process."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

import llmdocs
from llmdocs.testing import assert_close, assert_equivalent
from llmdocs.training import get_rank, get_world_size, is_main_process, setup_distributed, unwrap_model

WORKER = textwrap.dedent(
    '''
    """One rank of the DDP test (also imported by the test for the single-process reference)."""
    import json
    import sys

    import torch
    from safetensors.torch import save_file
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from llmdocs.data import IndexedBatches
    from llmdocs.training import TrainConfig, cleanup_distributed, setup_distributed, train


    def loss_fn(model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)


    def run(out_dir, rank, world_size, model_wrapper=None):
        torch.manual_seed(0)  # the same initial weights on every rank
        # float64: the ranks' all-reduced average must equal one process's gradient (an equivalence proof)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 4, generator=g, dtype=torch.float64)  # (N, 4)
        y = torch.sin(x.sum(dim=1, keepdim=True))  # (N, 1)
        # global batch 8 = world_size ranks x (8 // world_size) rows, two micro-batches per step
        batches = IndexedBatches(x, y, batch_size=8 // world_size, seed=0, rank=rank,
                                 world_size=world_size)
        cfg = TrainConfig(steps=6, lr=0.05, warmup=1, grad_accum=2, log_every=2,
                          checkpoint_every=3, device="cpu", out_dir=out_dir)
        wrapped = model_wrapper(model) if model_wrapper else model
        history = train(wrapped, batches, loss_fn, cfg, progress=False)
        return model, history


    if __name__ == "__main__":
        out = sys.argv[1]
        info = setup_distributed()
        model, history = run(out + "/run", info.rank, info.world_size, DistributedDataParallel)
        save_file(model.state_dict(), f"{out}/rank{info.rank}.safetensors")
        with open(f"{out}/history{info.rank}.json", "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "tokens_per_s"} for r in history], f)
        cleanup_distributed()
    '''
)


def _load_worker(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ddp_worker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_single_process_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = setup_distributed()
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (0, 1, 0, True)
    assert (get_rank(), get_world_size(), is_main_process()) == (0, 1, True)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="must be integers"):
        setup_distributed()
    layer = torch.nn.Linear(2, 2)
    assert unwrap_model(torch.nn.DataParallel(layer)) is layer


@pytest.mark.slow  # ~5 s idle: three Python processes import torch
@pytest.mark.numerics
def test_torchrun_two_processes_match_single_process(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    repo_root = Path(llmdocs.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    # --standalone: a local rendezvous on a free port; one session so a hang can be killed as a group
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(script), str(tmp_path)]
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
            output, _ = proc.communicate()
            pytest.fail(f"torchrun timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-6000:]

    rank0 = load_file(tmp_path / "rank0.safetensors")
    rank1 = load_file(tmp_path / "rank1.safetensors")
    for name in rank0:  # DDP averages gradients: the replicas never drift apart
        assert torch.equal(rank0[name], rank1[name]), name

    # one process on the whole global batch = the average of the two ranks' gradients
    reference, ref_history = _load_worker(script).run(None, rank=0, world_size=1)
    for name, value in reference.state_dict().items():
        assert_equivalent(rank0[name], value, depth=6, msg=name)  # 6 optimizer steps
    history0 = json.loads((tmp_path / "history0.json").read_text())
    history1 = json.loads((tmp_path / "history1.json").read_text())
    assert history0 == history1  # the logged loss is all-reduced over ranks
    losses = [torch.tensor([row["loss"] for row in h]) for h in (history0, ref_history)]  # logged in float32
    assert_close(*losses, depth=6)

    # only rank 0 writes the metrics log and checkpoints
    run_dir = tmp_path / "run"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step_00000003",
        "step_00000006",
    ]
