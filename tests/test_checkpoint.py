"""Tests of llmdocs.training.checkpoint: round trip, atomicity, no pickle, and exact resume."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch import nn

import llmdocs.training.checkpoint as checkpoint_module
from llmdocs.data import IndexedBatches
from llmdocs.training import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    build_adamw,
    build_scheduler,
    checkpoint_info,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_jsonl,
    save_checkpoint,
    train,
)


class _TinyNet(nn.Module):
    """Embedding -> dropout -> linear head tied to the embedding (exercises tied weights and RNG)."""

    def __init__(self, vocab: int = 11, d_model: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.drop(self.norm(self.embed(ids))))


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, labels = batch  # (B, T), (B, T)
    logits = model(ids)  # (B, T, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 11, (40, 6), generator=g)  # (N, T)
    return ids, (ids + 1) % 11  # learn "next symbol"


def _trained_objects() -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    model = _TinyNet()
    opt = build_adamw(model, lr=1e-2)
    sched = build_scheduler(opt, TrainConfig(steps=10, warmup=2))
    ids, labels = _data()
    for _ in range(3):
        _loss(model, (ids, labels)).backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def _fresh_objects(seed: int = 99) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(seed)
    model = _TinyNet()
    opt = build_adamw(model, lr=1e-2)
    return model, opt, build_scheduler(opt, TrainConfig(steps=10, warmup=2))


def _assert_same_state(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_state(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    else:
        assert a == b


def test_round_trip_restores_model_optimizer_scheduler_rng(tmp_path: Path) -> None:
    model, opt, sched = _trained_objects()
    cfg = TrainConfig(steps=10, warmup=2)
    path = save_checkpoint(tmp_path, model, opt, sched, step=3, extra={"pos": 6}, config=cfg)
    expected_rand = torch.rand(4)  # drawn after the RNG snapshot

    model2, opt2, sched2 = _fresh_objects()
    info = load_checkpoint(tmp_path, model2, opt2, sched2)
    assert info["path"] == path and info["step"] == 3 and info["extra"] == {"pos": 6}
    assert TrainConfig.from_dict(info["config"]) == cfg
    assert torch.equal(torch.rand(4), expected_rand)
    _assert_same_state(model.state_dict(), model2.state_dict())
    _assert_same_state(opt.state_dict(), opt2.state_dict())  # incl. betas as a tuple, int state keys
    _assert_same_state(sched.state_dict(), sched2.state_dict())
    assert model2.head.weight is model2.embed.weight  # still tied


def test_files_are_safetensors_and_json_without_pickle(tmp_path: Path) -> None:
    model, opt, sched = _trained_objects()
    path = save_checkpoint(tmp_path, model, opt, sched, step=3)
    assert sorted(p.name for p in path.iterdir()) == ["state.json", "tensors.safetensors"]
    state = json.loads((path / "state.json").read_text())
    assert state["step"] == 3 and state["model_aliases"] == {"head.weight": "embed.weight"}
    assert len(state["rng"]["torch"]) > 0 and all(isinstance(v, int) for v in state["rng"]["torch"])
    with safe_open(str(path / "tensors.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "model/embed.weight" in keys and "model/head.weight" not in keys  # tied: stored once
    assert "optimizer/state/0/exp_avg" in keys and "optimizer/state/0/exp_avg_sq" in keys


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, sched = _trained_objects()
    save_checkpoint(tmp_path, model, opt, sched, step=3)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle must not be used to load a checkpoint")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    model2, opt2, sched2 = _fresh_objects()
    assert load_checkpoint(tmp_path, model2, opt2, sched2)["step"] == 3


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, sched = _trained_objects()
    good = save_checkpoint(tmp_path, model, opt, sched, step=1)
    good_weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.embed.weight.add_(1.0)

    real_write = checkpoint_module._write_bytes

    def crash_on_state_json(path: Path, data: bytes) -> None:
        if path.name == "state.json":  # the tensors are written; the crash hits the JSON half-way
            real_write(path, data[: len(data) // 2])
            raise OSError("simulated crash: no space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_bytes", crash_on_state_json)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path, model, opt, sched, step=2)
    monkeypatch.undo()

    # leftovers of a hard kill (a temporary folder, a folder missing state.json) must be ignored too
    stale = tmp_path / ".step_00000003.tmp-kill"
    stale.mkdir()
    (stale / "tensors.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "step_00000004").mkdir()
    (tmp_path / "step_00000004" / "tensors.safetensors").write_bytes(b"partial")

    assert latest_checkpoint(tmp_path) == good
    assert list_checkpoints(tmp_path) == [good]
    assert not (tmp_path / "step_00000002").exists()
    model2, _, _ = _fresh_objects()
    assert load_checkpoint(tmp_path, model2)["step"] == 1
    _assert_same_state(good_weights, model2.state_dict())


def test_corrupt_tensor_file_is_detected(tmp_path: Path) -> None:
    model, _, _ = _trained_objects()
    path = save_checkpoint(tmp_path, model, step=1)
    data = bytearray((path / "tensors.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, _TinyNet())


def test_resave_same_step_and_keep(tmp_path: Path) -> None:
    model, opt, sched = _trained_objects()
    for step in (1, 2, 3, 3):
        save_checkpoint(tmp_path, model, opt, sched, step=step, extra={"step": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002", "step_00000003"]
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "empty", _TinyNet())


def test_unstorable_extra_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot store object"):
        save_checkpoint(tmp_path, _TinyNet(), step=0, extra={"bad": object()})
    assert list(tmp_path.iterdir()) == []


class _FakeClock:
    """A clock that the run advances by one second per micro-batch: a time budget counted deterministically."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(
    out_dir: Path,
    *,
    crash_at_step: int | None = None,
    resume: bool = False,
    max_seconds: float | None = None,
    clock: _FakeClock | None = None,
) -> list[dict]:
    """Train the tied, dropout-using model with shuffled data, grad accumulation and a cosine schedule."""
    torch.manual_seed(1234 if not resume else 4321)  # a resumed run starts from different weights
    model = _TinyNet()
    ids, labels = _data()
    batches = IndexedBatches(ids, labels, batch_size=4, seed=7)  # 10 batches per epoch: epochs cross

    def get_batch(index: int) -> tuple[torch.Tensor, ...]:
        if crash_at_step is not None and index == crash_at_step * 2:
            raise KeyboardInterrupt  # the run dies while reading step `crash_at_step + 1`
        if clock is not None:
            clock.now += 1.0
        return batches(index)

    cfg = TrainConfig(
        steps=12,
        lr=1e-2,
        warmup=2,
        grad_accum=2,
        log_every=2,
        eval_every=4,
        checkpoint_every=5,
        grad_clip=0.5,
        seed=3,
        device="cpu",
        out_dir=str(out_dir),
        max_seconds=max_seconds,
    )

    def evaluate(m: nn.Module, step: int) -> dict[str, float]:
        torch.rand(3)  # an evaluation that draws random numbers must not change the resumed run
        return {"val_loss": _loss(m, (ids, labels)).item()}

    clock_kwargs = {} if clock is None else {"clock": clock}
    history = train(model, get_batch, _loss, cfg, evaluate=evaluate, resume=resume, progress=False, **clock_kwargs)
    history.append({"weights": {k: v.clone() for k, v in model.state_dict().items()}})
    return history


def _without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in rows]


@pytest.mark.numerics
def test_resume_is_bit_identical_to_the_unbroken_run(tmp_path: Path) -> None:
    unbroken = _run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", crash_at_step=7)  # checkpoints at 5; steps 6, 7 are lost
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step_00000005"
    resumed = _run(tmp_path / "b", resume=True)

    weights_a, weights_b = unbroken.pop()["weights"], resumed.pop()["weights"]
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name  # bit-identical
    assert _without_timing(resumed) == _without_timing(unbroken)  # same losses, lrs, grad norms
    logged = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert _without_timing(logged) == _without_timing(unbroken)  # no duplicated rows after resume


@pytest.mark.parametrize("stop_step", [7, 8])  # 7: between two rows; 8: a logged and evaluated step
def test_a_run_stopped_by_its_time_budget_resumes_to_the_unbroken_run(tmp_path: Path, stop_step: int) -> None:
    unbroken = _run(tmp_path / "a")
    # grad_accum=2 micro-batches per step, one fake second each: the budget is spent after step `stop_step`
    stopped = _run(tmp_path / "b", max_seconds=2.0 * stop_step, clock=_FakeClock())
    stopped.pop()
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == f"step_{stop_step:08d}"
    last = stopped[-1]
    assert last["step"] == stop_step and "loss" in last and "val_loss" in last  # a final row, with an evaluation
    assert _without_timing(read_jsonl(tmp_path / "b" / "metrics.jsonl")) == _without_timing(stopped)
    resumed = _run(tmp_path / "b", resume=True)

    weights_a, weights_b = unbroken.pop()["weights"], resumed.pop()["weights"]
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name  # bit-identical
    assert _without_timing(resumed) == _without_timing(unbroken)  # the final row of the stopped run is gone
    assert _without_timing(read_jsonl(tmp_path / "b" / "metrics.jsonl")) == _without_timing(unbroken)


# ---- resuming: the same run, the same model ---------------------------------------------------------------------

_X = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))  # (N, 3)
_Y = _X.sum(dim=1, keepdim=True)  # (N, 1)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def _train_to_step_40(out_dir: Path) -> tuple[TrainConfig, nn.Module]:
    """The newcomer's run: lr=1e-2, 40 steps, checkpoints at 30 and 40."""
    cfg = TrainConfig(steps=40, lr=1e-2, warmup=0, log_every=10, checkpoint_every=30, device="cpu")
    cfg = dataclasses.replace(cfg, out_dir=str(out_dir))
    model = _linear()
    train(model, lambda i: (_X, _Y), _mse, cfg, progress=False)
    return cfg, model


def test_a_resume_with_other_training_settings_is_refused(tmp_path: Path) -> None:
    cfg, _ = _train_to_step_40(tmp_path)
    model = _linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # used to run 10 more steps with the new steps but the checkpoint's learning rate, silently
    with pytest.raises(ValueError, match="resume continues the run of the checkpoint at") as error:
        train(model, lambda i: (_X, _Y), _mse, dataclasses.replace(cfg, steps=50, lr=1e-3), resume=True, progress=False)
    message = str(error.value)
    assert "steps: checkpoint 40, now 50; lr: checkpoint 0.01, now 0.001." in message
    assert "Start a new out_dir to change them" in message and "max_seconds" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was loaded
    # used to return the history up to step 40 and the step-40 weights, silently
    with pytest.raises(ValueError, match="steps: checkpoint 40, now 20"):
        train(model, lambda i: (_X, _Y), _mse, dataclasses.replace(cfg, steps=20), resume=True, progress=False)
    step_30 = tmp_path / "checkpoints" / "step_00000030"
    with pytest.raises(ValueError, match=r"betas: checkpoint \(0\.9, 0\.95\), now \(0\.9, 0\.99\)"):
        train(model, lambda i: (_X, _Y), _mse, dataclasses.replace(cfg, betas=(0.9, 0.99)), resume=step_30)


def test_resuming_a_finished_run_loads_it_and_trains_nothing(tmp_path: Path) -> None:
    cfg, unbroken = _train_to_step_40(tmp_path)
    model = _linear()
    batches_read: list[int] = []
    history = train(model, lambda i: batches_read.append(i) or (_X, _Y), _mse, cfg, resume=True, progress=False)
    assert batches_read == [] and history[-1]["step"] == 40
    assert all(torch.equal(unbroken.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_resume_may_change_when_it_stops_where_it_runs_and_what_it_records(tmp_path: Path) -> None:
    cfg, unbroken = _train_to_step_40(tmp_path / "a")
    changed = dataclasses.replace(
        cfg,
        max_seconds=1e6,
        out_dir=str(tmp_path / "b"),
        log_every=5,
        eval_every=7,
        checkpoint_every=4,
        keep_checkpoints=3,
        device="cpu",
    )
    differing = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(changed, f.name)}
    assert differing == set(RESUME_MAY_CHANGE) - {"device"}  # CPU only in the tests
    model = _linear()
    step_30 = tmp_path / "a" / "checkpoints" / "step_00000030"
    history = train(model, lambda i: (_X, _Y), _mse, changed, resume=step_30, progress=False)
    assert [row["step"] for row in history] == [10, 20, 30, 35, 40]  # the new log_every after step 30
    for name, value in unbroken.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name  # the same run: bit-identical


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path: Path) -> None:
    _train_to_step_40(tmp_path)
    for model, message in (
        (
            nn.Sequential(nn.Linear(3, 1)),
            r"model: missing keys \(2\): 0\.weight, 0\.bias; unexpected keys \(2\): bias, weight$",
        ),
        (nn.Linear(4, 1), r"model: other shapes, checkpoint vs model \(1\): weight \(1, 3\) vs \(1, 4\)$"),
    ):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match=r"the checkpoint at .*step_00000040 was written by a different model: "):
            load_checkpoint(tmp_path / "checkpoints", model)
        with pytest.raises(ValueError, match=message):  # used to be torch's "Error(s) in loading state_dict"
            load_checkpoint(tmp_path / "checkpoints", model)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # left untouched
    cfg = TrainConfig(steps=40, lr=1e-2, warmup=0, log_every=10, checkpoint_every=30, device="cpu")
    with pytest.raises(ValueError, match=r"step_00000030 was written by a different model: missing keys \(2\)"):
        train(
            nn.Sequential(nn.Linear(3, 1)),
            lambda i: (_X, _Y),
            _mse,
            cfg,
            resume=tmp_path / "checkpoints" / "step_00000030",
            progress=False,
        )


def test_checkpoint_info_reads_the_step_and_config_without_tensors(tmp_path: Path) -> None:
    cfg, _ = _train_to_step_40(tmp_path)
    info = checkpoint_info(tmp_path / "checkpoints")
    assert info["step"] == 40 and info["path"].name == "step_00000040"
    assert TrainConfig.from_dict(info["config"]) == cfg
    assert cfg.resume_conflicts(info["config"]) == []
