"""Tests of llmdocs.training: seeding, devices, schedules, config, the loop, metrics and the figure."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from llmdocs.data import IndexedBatches
from llmdocs.testing import assert_equivalent
from llmdocs.training import (
    TrainConfig,
    build_adamw,
    build_scheduler,
    inverse_sqrt,
    inverse_sqrt_lambda,
    lambda_scheduler,
    mean_loss,
    plot_history,
    read_jsonl,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    train,
    warmup_cosine,
    warmup_cosine_lambda,
)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def _regression(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 4, generator=g)  # (N, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])  # (N, 1)
    return x, y


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


# --- seeding and devices -------------------------------------------------------------------------


def test_seed_everything_seeds_python_numpy_torch() -> None:
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    generator = seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert isinstance(generator, torch.Generator)
    assert generator.initial_seed() == 7


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_seed_everything_rejects_bad_seeds(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="seed"):
        seed_everything(bad)  # type: ignore[arg-type]


def test_rng_state_round_trips_through_json() -> None:
    seed_everything(3)
    state = json.loads(json.dumps(rng_state()))
    expected = (random.random(), np.random.rand(), torch.rand(2))
    set_rng_state(state)
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[:2] == expected[:2]
    assert torch.equal(got[2], expected[2])


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, mps, got 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


# --- schedules -----------------------------------------------------------------------------------


def test_warmup_cosine_hand_values() -> None:
    values = [warmup_cosine(s, warmup=4, total=12) for s in (0, 1, 3, 4, 8, 12, 20)]
    # warm-up (s+1)/4; then 0.5 * (1 + cos(pi * (s-4)/8)): s=8 is halfway, s=12 the end
    assert values == pytest.approx([0.25, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0])
    assert warmup_cosine(6, warmup=4, total=12) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(12, 4, 12, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(8, 4, 12, min_ratio=0.1) == pytest.approx(0.55)
    assert warmup_cosine(5, warmup=0, total=10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_warmup_cosine_validation() -> None:
    with pytest.raises(ValueError, match="total=4 must be greater than warmup=4"):
        warmup_cosine(0, warmup=4, total=4)
    with pytest.raises(ValueError, match="min_ratio"):
        warmup_cosine(0, 1, 4, min_ratio=1.5)
    with pytest.raises(ValueError, match="step"):
        warmup_cosine(-1, 1, 4)


def test_inverse_sqrt_hand_values() -> None:
    # lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), d_model=512, warmup=4000
    assert inverse_sqrt(4000, 512, 4000) == pytest.approx(6.987712429686844e-4)  # 1/sqrt(512*4000)
    assert inverse_sqrt(16000, 512, 4000) == pytest.approx(3.493856214843422e-4)  # half the peak
    assert inverse_sqrt(1, 512, 4000) == pytest.approx(1.746928107421711e-07)
    assert inverse_sqrt(2000, 512, 4000) == pytest.approx(0.5 * 6.987712429686844e-4)  # linear
    assert inverse_sqrt(0, 512, 4000) == 0.0
    with pytest.raises(ValueError, match="d_model"):
        inverse_sqrt(1, 0, 10)


def test_lambda_helpers_drive_lambda_lr() -> None:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = lambda_scheduler(opt, inverse_sqrt_lambda(d_model=512, warmup=10))
    for step in range(1, 30):  # the lr used by update number `step` is the paper's lrate(step)
        assert opt.param_groups[0]["lr"] == pytest.approx(inverse_sqrt(step, 512, 10))
        opt.step()
        sched.step()
    normalized = inverse_sqrt_lambda(512, warmup=10, normalize=True)
    assert normalized(9) == 1.0
    assert normalized(39) == pytest.approx(0.5)
    cosine = warmup_cosine_lambda(warmup=2, total=4, min_ratio=0.0)
    assert [cosine(s) for s in range(7)] == pytest.approx([0.5, 1, 1, 0.5, 0, 0, 0])


def test_build_scheduler_constant_and_cosine() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, TrainConfig(steps=10, warmup=2, schedule="constant"))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 2.0, 2.0, 2.0])
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, TrainConfig(steps=10, warmup=2, min_lr_ratio=0.5))
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive int"),
        ({"grad_accum": 0}, "grad_accum must be a positive int"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": float("inf")}, "lr must be positive and finite, got inf"),  # used to train on NaN losses
        ({"lr": float("nan")}, "lr must be positive and finite, got nan"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0, got nan"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
        ({"grad_clip": float("nan")}, r"grad_clip must be None or a finite number >= 0 \(None or 0 disables"),
        ({"grad_clip": float("inf")}, "grad_clip must be None or a finite number >= 0"),
        ({"min_lr_ratio": float("nan")}, r"min_lr_ratio must be a number in \[0, 1\], got nan"),
        ({"min_lr_ratio": 1.5}, r"min_lr_ratio must be a number in \[0, 1\]"),
        ({"betas": (0.9, float("nan"))}, r"betas must be two numbers in \[0, 1\)"),
        ({"betas": (0.9, 0.95, 0.99)}, "betas must be two numbers"),
        ({"max_seconds": float("inf")}, "max_seconds must be None or a positive number of seconds, got inf"),
        ({"seed": 2**64}, "seed must be below 2"),
        ({"device": "cuda:first"}, "device must be auto, cpu, cuda or mps"),
        ({"out_dir": ""}, "out_dir must be None or a folder path"),
        ({"warmup": 10, "steps": 10}, "warmup=10 must be smaller than steps=10"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"device": "tpu"}, "device"),
        ({"eval_every": -1}, "eval_every must be a non-negative int"),
        ({"max_seconds": 0}, "max_seconds must be None or a positive number of seconds, got 0"),
        ({"max_seconds": -5.0}, "max_seconds must be None or a positive number"),
        ({"max_seconds": float("nan")}, "max_seconds must be None or a positive number"),
    ],
)
def test_train_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # each used to pass, or to fail with an error about something else ('>' not supported, no len(), .split)
        ({"lr": "1e-3"}, "lr must be positive and finite, got str '1e-3'"),
        ({"betas": 0.9}, r"betas must be two numbers in \[0, 1\), e\.g\. \(0\.9, 0\.95\), got float 0\.9"),
        ({"betas": "ab"}, "betas must be two numbers"),
        ({"betas": (0.9, "0.95")}, "betas must be two numbers"),
        ({"device": None}, "device must be auto, cpu, cuda or mps .*, got NoneType None"),
        ({"steps": 10.0}, "steps must be a positive int, got float 10.0"),
        ({"warmup": True}, "warmup must be a non-negative int, got bool True"),
        ({"seed": "0"}, "seed must be a non-negative int"),
        ({"weight_decay": None}, "weight_decay must be a finite number >= 0, got NoneType"),
        ({"grad_clip": "1"}, "grad_clip must be None or a finite number"),
        ({"min_lr_ratio": "0.1"}, "min_lr_ratio must be a number"),
        ({"max_seconds": True}, "max_seconds must be None or a positive number"),
        ({"max_seconds": "60"}, "max_seconds must be None or a positive number"),
        ({"schedule": None}, "schedule must be one of"),
        ({"out_dir": 3}, r"out_dir must be None or a folder path \(str or Path\), got int"),
    ],
)
def test_train_config_rejects_values_of_the_wrong_type(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_train_config_stores_numpy_numbers_and_devices_as_python_values() -> None:
    cfg = TrainConfig(steps=np.int64(20), warmup=2, lr=np.float32(0.5), betas=[0.9, 0.99], device=torch.device("cpu"))
    assert (cfg.steps, cfg.lr, cfg.betas, cfg.device) == (20, 0.5, (0.9, 0.99), "cpu")
    assert type(cfg.steps) is int and type(cfg.lr) is float
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # JSON-friendly
    assert TrainConfig(device="cuda:1").device == "cuda:1"  # an index is fine (checked when the run starts)


def test_train_config_round_trip_and_frozen() -> None:
    cfg = TrainConfig(steps=20, warmup=2, out_dir="runs/x")
    data = json.loads(json.dumps(cfg.to_dict()))  # betas become a list in JSON
    assert TrainConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]


# --- the loop ------------------------------------------------------------------------------------


def test_build_adamw_groups() -> None:
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    opt = build_adamw(model, lr=1e-3, weight_decay=0.2)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.2 and len(decay["params"]) == 2  # embedding + linear weight
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3  # bias + LN weight, bias


def test_train_learns_and_writes_logs(tmp_path: Path) -> None:
    x, y = _regression()
    batches = IndexedBatches(x, y, batch_size=8, seed=0)
    evaluations = []

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        evaluations.append(step)
        return {"val_loss": mean_loss(model, [(x, y)], _mse)}

    cfg = TrainConfig(steps=40, lr=0.05, warmup=2, log_every=10, eval_every=20, device="cpu", out_dir=str(tmp_path))
    history = train(_mlp(), batches, _mse, cfg, evaluate=evaluate, progress=False)
    assert [row["step"] for row in history] == [10, 20, 30, 40]
    assert evaluations == [20, 40] and "val_loss" in history[1] and "val_loss" not in history[0]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["val_loss"] < history[1]["val_loss"]
    for row in history:
        assert row["tokens_per_s"] > 0 and row["grad_norm"] >= 0 and row["lr"] > 0
    assert read_jsonl(tmp_path / "metrics.jsonl") == history
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["step", "loss"] and "val_loss" in header
    assert (tmp_path / "checkpoints" / "step_00000040" / "state.json").is_file()


@pytest.mark.numerics
def test_grad_accumulation_equals_the_big_batch() -> None:
    x, y = (t.double() for t in _regression(32))  # an equivalence proof runs in float64
    cfg_small = TrainConfig(steps=6, lr=0.05, warmup=1, grad_accum=2, log_every=1, device="cpu")
    cfg_big = TrainConfig(steps=6, lr=0.05, warmup=1, grad_accum=1, log_every=1, device="cpu")
    small, big = _mlp().double(), _mlp().double()
    h_small = train(small, IndexedBatches(x, y, batch_size=4, seed=1), _mse, cfg_small, progress=False)
    h_big = train(big, IndexedBatches(x, y, batch_size=8, seed=1), _mse, cfg_big, progress=False)
    for a, b in zip(small.parameters(), big.parameters(), strict=True):
        assert_equivalent(a, b, depth=cfg_big.steps)
    losses = [torch.tensor([r["loss"] for r in h], dtype=torch.float64) for h in (h_small, h_big)]
    assert_equivalent(*losses, depth=cfg_big.steps)  # a float64 run logs float64 losses


def test_grad_clipping_bounds_the_update() -> None:
    x, y = _regression(8)
    model = _mlp()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = TrainConfig(steps=1, warmup=0, grad_clip=0.01, schedule="constant", device="cpu")
    history = train(model, lambda i: (x, y), _mse, cfg, optimizer=opt, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert history[0]["grad_norm"] > 0.01  # the logged norm is the one before clipping
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_train_counts_tokens_from_loss_fn() -> None:
    x, y = _regression(8)

    def loss_with_tokens(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
        return _mse(model, batch), 1000

    cfg = TrainConfig(steps=2, warmup=0, log_every=2, device="cpu")
    history = train(_mlp(), lambda i: (x, y), loss_with_tokens, cfg, progress=False)
    assert history[0]["tokens_per_s"] > 2000 * 10  # 2000 tokens in well under 0.1 s


def test_resume_true_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    x, y = _regression(8)
    cfg = TrainConfig(steps=2, warmup=0, log_every=1, device="cpu", out_dir=str(tmp_path))
    history = train(_mlp(), lambda i: (x, y), _mse, cfg, resume=True, progress=False)
    assert [row["step"] for row in history] == [1, 2]
    with pytest.raises(ValueError, match="needs config"):
        train(_mlp(), lambda i: (x, y), _mse, TrainConfig(steps=2, warmup=0), resume=True)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(_mlp(), lambda i: (x, y), _mse, cfg, resume=tmp_path / "nowhere", progress=False)


def test_an_out_dir_that_is_a_file_is_refused_before_training(tmp_path: Path) -> None:
    x, y = _regression(8)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    for out_dir, message in (
        (notes, r"^out_dir='.*notes\.txt' is a file, not a folder"),  # used to fail with FileExistsError
        (notes / "run", r"^out_dir='.*run' is inside '.*notes\.txt', which is a file, not a folder"),
    ):
        model = _mlp()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match=message):
            train(model, lambda i: (x, y), _mse, TrainConfig(steps=2, warmup=0, out_dir=str(out_dir)), progress=False)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # refused before any step


def test_plot_history() -> None:
    history = [
        {"step": 10, "loss": 2.0, "lr": 1e-3},
        {"step": 20, "loss": 1.5, "lr": 5e-4, "val_loss": 1.7},
    ]
    fig = plot_history(history, log_y=True, title="run")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["loss", "val_loss"]
    assert len(fig.axes) == 2  # the learning-rate axis
    with pytest.raises(ValueError, match="none of the keys"):
        plot_history([{"step": 1, "acc": 0.5}])


def test_fresh_run_refuses_an_out_dir_with_checkpoints(tmp_path: Path) -> None:
    x, y = _regression(8)
    cfg = TrainConfig(steps=2, warmup=0, device="cpu", out_dir=str(tmp_path))
    train(_mlp(), lambda i: (x, y), _mse, cfg, progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(_mlp(), lambda i: (x, y), _mse, cfg, progress=False)


def test_train_rejects_bad_arguments_and_empty_batches() -> None:
    x, y = _regression(8)
    cfg = TrainConfig(steps=2, warmup=0, device="cpu")
    with pytest.raises(TypeError, match=r"get_batch must be a function get_batch\(index\) -> batch"):
        train(_mlp(), [(x, y)], _mse, cfg, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        train(_mlp(), lambda i: (x, y), None, cfg, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        train(_mlp(), lambda i: (x, y), _mse, {"steps": 2}, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"get_batch\(0\) returned an empty batch \(a tensor of shape \(0, 4\)\)"):
        train(_mlp(), lambda i: (x[:0], y[:0]), _mse, cfg, progress=False)
    with pytest.raises(TypeError, match=r"get_batch\(0\) returned None"):
        train(_mlp(), lambda i: None, _mse, cfg, progress=False)
    not_a_dict = lambda m, step: 0.5  # noqa: E731
    with pytest.raises(TypeError, match=r"evaluate\(model, step\) must return a dict of metrics, got float"):
        train(_mlp(), lambda i: (x, y), _mse, cfg, evaluate=not_a_dict, progress=False)  # type: ignore[arg-type]


def test_train_names_a_callback_that_cannot_take_the_loops_arguments() -> None:
    x, y = _regression(8)
    cfg = TrainConfig(steps=2, warmup=0, device="cpu")

    def old_evaluate(model: nn.Module) -> dict[str, float]:  # the signature before evaluate got the step
        return {}

    with pytest.raises(TypeError, match=r"evaluate must be a function evaluate\(model, step\).*old_evaluate takes"):
        train(_mlp(), lambda i: (x, y), _mse, cfg, evaluate=old_evaluate, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"get_batch must be a function get_batch\(index\).* takes \(\)"):
        train(_mlp(), lambda: (x, y), _mse, cfg, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"loss_fn must be a function loss_fn\(model, batch\)"):
        train(_mlp(), lambda i: (x, y), lambda batch: batch, cfg, progress=False)  # type: ignore[arg-type]
    flexible = lambda *args, **kwargs: {"n": float(len(args))}  # noqa: E731
    assert train(_mlp(), lambda i: (x, y), _mse, cfg, evaluate=flexible, progress=False)[-1]["n"] == 2.0


def test_train_rejects_a_loss_it_cannot_step_on() -> None:
    x, y = _regression(8)
    cfg = TrainConfig(steps=2, warmup=0, device="cpu")
    per_example = lambda m, b: (m(b[0]) - b[1]) ** 2  # noqa: E731  (8, 1): autograd would say "implicitly created"
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar loss .*got a tensor of shape \(8, 1\)"):
        train(_mlp(), lambda i: (x, y), per_example, cfg, progress=False)
    with pytest.raises(TypeError, match=r"loss_fn must return the loss as a tensor .*got float"):
        train(_mlp(), lambda i: (x, y), lambda m, b: 0.5, cfg, progress=False)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="got a tuple of 3 items"):
        train(_mlp(), lambda i: (x, y), lambda m, b: (_mse(m, b), 8, 0), cfg, progress=False)  # type: ignore
    detached = lambda m, b: _mse(m, b).detach()  # noqa: E731
    with pytest.raises(ValueError, match=r"loss_fn\(model, get_batch\(0\)\) returned a loss without a gradient"):
        train(_mlp(), lambda i: (x, y), detached, cfg, progress=False)
    one_element = lambda m, b: _mse(m, b).reshape(1)  # noqa: E731  (1,): one number, accepted as the loss
    assert len(train(_mlp(), lambda i: (x, y), one_element, cfg, progress=False)) == 1


def test_a_nan_loss_stops_the_run_before_its_update(tmp_path: Path) -> None:
    x, y = _regression(8)
    poisoned = x.clone()
    poisoned[3, 1] = float("nan")  # one bad value in one micro-batch of step 3

    def get_batch(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (poisoned if index == 5 else x), y

    model = _mlp()
    settings = {"warmup": 0, "schedule": "constant", "grad_accum": 2, "log_every": 1, "device": "cpu"}
    cfg = TrainConfig(steps=6, out_dir=str(tmp_path), **settings)  # type: ignore[arg-type]
    with pytest.raises(FloatingPointError, match=r"step 3: the loss is nan \(from get_batch\(5\)\).*after step 2"):
        train(model, get_batch, _mse, cfg, progress=False)
    assert [row["step"] for row in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]  # the log stops before it
    reference = _mlp()  # two good steps (a constant schedule does not depend on steps)
    train(reference, get_batch, _mse, TrainConfig(steps=2, **settings), progress=False)  # type: ignore[arg-type]
    for stopped, good in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(stopped, good)  # the weights of step 2: the NaN step was not applied


def test_an_infinite_gradient_stops_the_run_even_when_the_loss_is_finite() -> None:
    x, y = _regression(8)

    def sqrt_at_zero(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out = model(batch[0])
        return torch.sqrt(out - out.detach()).mean()  # value 0, but d sqrt(u)/du = inf at u = 0

    model = _mlp()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match=r"step 1: the loss is 0\.0 and the gradient norm (inf|nan)"):
        train(model, lambda i: (x, y), sqrt_at_zero, TrainConfig(steps=3, warmup=0, device="cpu"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # no update applied


def test_mean_loss_refuses_to_average_nothing() -> None:
    x, y = _regression(8)
    model = _mlp()
    with pytest.raises(ValueError, match="batches is empty: mean_loss needs at least one batch"):
        mean_loss(model, [], _mse)
    with pytest.raises(ValueError, match="hold no token"):
        mean_loss(model, [(x[:0], y[:0])], lambda m, b: torch.tensor(0.0))
    model.train()

    def failing(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        mean_loss(model, [(x, y)], failing)  # a failing loss_fn ...
    assert model.training  # ... still gives the model back in its mode


def test_build_adamw_needs_trainable_parameters() -> None:
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter with requires_grad=True"):
        build_adamw(frozen, lr=1e-3)


def test_max_seconds_stops_after_the_step_that_spends_it() -> None:
    x, y = _regression(8)
    now = [0.0]

    def get_batch(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        now[0] += 1.0  # each step costs one second of a fake clock
        return x, y

    evaluated = []
    cfg = TrainConfig(steps=10, warmup=0, log_every=4, max_seconds=5.5, device="cpu")
    history = train(
        _mlp(),
        get_batch,
        _mse,
        cfg,
        evaluate=lambda m, step: evaluated.append(step) or {"val_loss": 1.0},
        progress=False,
        clock=lambda: now[0],
    )
    assert [row["step"] for row in history] == [4, 6]  # the regular row, then the row of the stopping step
    assert evaluated == [6] and history[-1]["val_loss"] == 1.0


def test_a_float64_run_logs_float64_losses() -> None:
    # the logged loss was summed in a float32 tensor, so float64 runs logged float32-rounded losses
    x, y = (t.double() for t in _regression(8))
    model = _mlp().double()
    with torch.no_grad():
        expected = ((_mse(model, (x[:4], y[:4])) + _mse(model, (x[4:], y[4:]))) / 2).item()  # before the update
    assert torch.tensor(expected).float().item() != expected  # a float32 log could not hold this value
    cfg = TrainConfig(steps=1, warmup=0, grad_accum=2, log_every=1, device="cpu")
    history = train(model, lambda i: (x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]), _mse, cfg, progress=False)
    assert history[0]["loss"] == expected  # the same float64 sum, bit for bit
