"""llmdocs.testing, the tolerance policy: its numbers, its errors, that it catches a real bug, and that it is the
only place where a check picks a rounding tolerance (see docs/conventions.md, "Numerical tolerances")."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from weights import perturb

from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.testing import EPS_PER_LEVEL, MAX_RTOL, Tolerance, assert_close, assert_equivalent, tolerance

ROOT = Path(__file__).resolve().parents[1]


# ---- the numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_tolerance_is_depth_times_budget_times_epsilon(dtype: torch.dtype) -> None:
    eps = torch.finfo(dtype).eps
    assert tolerance(dtype) == Tolerance(EPS_PER_LEVEL[dtype] * eps, EPS_PER_LEVEL[dtype] * eps)
    assert tolerance(dtype, depth=4).rtol == pytest.approx(4 * tolerance(dtype).rtol)  # bfloat16's widest
    assert tolerance(dtype, depth=3, scale=50.0).atol == pytest.approx(50 * tolerance(dtype, depth=3).rtol)


def test_float64_tolerance_is_tight_and_float32_is_not() -> None:
    assert tolerance(torch.float64, depth=12).rtol < 1e-12  # a 12-layer equivalence proof
    assert tolerance(torch.float64).rtol < 1e-13
    assert 1e-6 < tolerance(torch.float32).rtol < 1e-5
    assert tolerance(torch.int64) == tolerance(torch.bool) == Tolerance(0.0, 0.0)  # integers: exactly equal


def test_tolerance_rejects_a_bad_depth_or_scale() -> None:
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        tolerance(torch.float32, depth=0)
    with pytest.raises(TypeError, match="depth must be an integer >= 1"):
        tolerance(torch.float32, depth=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"depth must be an integer >= 1 .*got bool True"):
        tolerance(torch.float32, depth=True)  # used to count as depth 1
    assert tolerance(torch.float32, depth=np.int64(3)) == tolerance(torch.float32, depth=3)  # used to be refused
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        tolerance(torch.float32, scale=-1.0)


@pytest.mark.parametrize(
    ("scale", "error", "message"),
    [
        (float("inf"), ValueError, "got inf: an infinite atol would let any result pass"),  # used to pass x vs x+100
        (float("nan"), ValueError, "got nan"),
        (-1.0, ValueError, "got -1.0"),
        ("1", TypeError, "got str '1'"),  # used to be float()-ed silently
        ("big", TypeError, "got str 'big'"),  # used to fail in float() without naming scale
        (True, TypeError, "got bool True"),
        (torch.ones(3), ValueError, r"got a torch\.float32 tensor of shape \(3,\)"),
    ],
)
def test_a_bad_scale_is_named(scale: object, error: type[Exception], message: str) -> None:
    x = torch.randn(3)
    with pytest.raises(error, match="scale must be a finite number >= 0 .*" + message):
        assert_close(x, x + 100, scale=scale)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dtype", "widest"), [(torch.bfloat16, 4), (torch.float16, 32), (torch.float32, 65_536), (torch.float64, 2**45)]
)
def test_a_tolerance_too_wide_to_check_anything_is_refused(dtype: torch.dtype, widest: int) -> None:
    assert tolerance(dtype, depth=widest).rtol == MAX_RTOL == 0.5  # still a check: half the value
    message = rf"a tolerance this wide checks nothing: rtol=\S+ from depth={widest + 1} of dtype {dtype}"
    with pytest.raises(ValueError, match=message):
        tolerance(dtype, depth=widest + 1)


def test_a_huge_depth_no_longer_passes_anything() -> None:
    x = torch.randn(3)
    with pytest.raises(ValueError, match=r"checks nothing: rtol=\S+ from depth=10{300} of dtype torch\.float32"):
        assert_close(x, x + 100, depth=10**300)  # used to pass


def test_a_scale_is_trusted_as_the_magnitude_of_the_inputs() -> None:
    # documented, not bounded: a cancellation to zero needs a scale far above |expected| (here 0)
    x = torch.randn(1000, 4)
    assert_close((x - x.mean(0)).mean(0), torch.zeros(4), scale=x.abs().max())


def test_a_scale_may_be_a_one_element_tensor_or_a_numpy_number() -> None:
    x = torch.randn(3)
    assert_close(x, x, scale=torch.tensor([2.0]))
    assert_close(x, x, scale=np.float32(2.0))
    assert tolerance(torch.float32, scale=torch.tensor(2.0)).atol == tolerance(torch.float32, scale=2.0).atol


def test_tolerance_takes_torch_dtypes_with_a_budget_only() -> None:
    with pytest.raises(TypeError, match=r"dtype must be a torch\.dtype such as torch\.float32, got str 'float32'"):
        tolerance("float32")  # type: ignore[arg-type]  # used to fail with an AttributeError
    with pytest.raises(ValueError, match=r"dtype torch\.float8_e4m3fn has no error budget .*float64, float32"):
        tolerance(torch.float8_e4m3fn)  # used to get rtol=2.0
    assert tolerance(torch.complex128) == tolerance(torch.float64)  # complex: the budget of its parts
    assert tolerance(torch.complex64) == tolerance(torch.float32)


def test_msg_must_be_a_string() -> None:
    x = torch.zeros(2)
    with pytest.raises(TypeError, match=r"msg must be a str .*got int 123"):
        assert_close(x, x, msg=123)  # type: ignore[arg-type]


def test_nan_never_compares_equal() -> None:
    nan = torch.tensor([float("nan"), 1.0])
    with pytest.raises(AssertionError, match="not close"):
        assert_close(nan, nan.clone())  # torch.testing.assert_close's equal_nan=False


# ---- assert_close / assert_equivalent ---------------------------------------------------------------------------


def test_assert_close_passes_inside_the_tolerance_and_fails_outside() -> None:
    expected = torch.ones(10)
    tol = tolerance(torch.float32)  # scale 1: |a - e| <= atol + rtol * 1 = 2 rtol
    assert_close(expected + 1.5 * tol.rtol, expected)
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_close(expected + 3 * tol.rtol, expected)
    assert_close(expected + 3 * tol.rtol, expected, depth=2)  # twice the layers, twice the budget


def test_the_scale_is_the_largest_expected_value() -> None:
    expected = torch.tensor([1000.0, 0.0])  # a large logit and one that cancels to zero
    actual = torch.tensor([1000.0, 1e-3])  # off by 1e-6 of the scale: float32 rounding of the large terms
    assert_close(actual, expected)
    with pytest.raises(AssertionError, match=r"rtol x scale 1\)"):
        assert_close(actual, expected, scale=1.0)


def test_errors_name_the_policy_the_check_and_the_dtypes() -> None:
    with pytest.raises(AssertionError, match=r"(?s)^logits of layer 3\n.*depth 2: rtol=1\.5e-05.*Conventions"):
        assert_close(torch.zeros(3), torch.ones(3), depth=2, msg="logits of layer 3")
    with pytest.raises(AssertionError, match=r"dtypes differ: torch\.float32 vs torch\.float64"):
        assert_close(torch.zeros(3), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="compare tensors"):
        assert_close([1.0], [1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"equivalence proof compares float64 results, got torch\.float32"):
        assert_equivalent(torch.zeros(3), torch.zeros(3))
    with pytest.raises(AssertionError, match="shape"):
        assert_close(torch.zeros(3), torch.zeros(4))
    with pytest.raises(TypeError, match=r"got torch\.complex64: .*\.to\(torch\.complex128\)"):
        assert_equivalent(torch.zeros(3, dtype=torch.complex64), torch.zeros(3, dtype=torch.complex64))


def test_complex128_results_prove_equivalence_like_float64() -> None:
    z = torch.randn(4, 4, dtype=torch.complex128)
    assert_equivalent(z @ z, torch.einsum("ij,jk->ik", z, z))  # two orders of summation
    with pytest.raises(AssertionError, match="not close"):
        assert_equivalent(z + 1e-9j, z)  # off by 1e-9 in the imaginary part: far above float64's rounding


def test_infinities_must_match_and_do_not_set_the_scale() -> None:
    expected = torch.tensor([float("-inf"), 2.0, -1.0])  # a filtered logit
    assert_close(expected.clone(), expected)
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([0.0, 2.0, -1.0]), expected)


@pytest.mark.numerics
def test_float64_catches_a_perturbed_weight_that_float32_misses() -> None:
    """The reason equivalence is proven in float64: a bug of 1e-6 in one weight hides in float32's rounding."""
    torch.manual_seed(0)
    model = perturb(GPT(GPTConfig.tiny(50)))
    buggy = copy.deepcopy(model)
    with torch.no_grad():
        buggy.blocks[1].ff.fc1.weight[7, 5] += 1e-6
        ids = torch.randint(0, 50, (2, 16))
        assert_close(buggy(ids), model(ids), depth=2)  # float32: passes, the bug is inside the tolerance
        model, buggy = model.double(), buggy.double()
        with pytest.raises(AssertionError, match="Tensor-likes are not close"):
            assert_equivalent(buggy(ids), model(ids), depth=2)
        buggy.blocks[1].ff.fc1.weight[7, 5] = model.blocks[1].ff.fc1.weight[7, 5]  # fixed: equivalent again
        assert_equivalent(buggy(ids), model(ids), depth=2)


# ---- the policy is the only source of tolerances ----------------------------------------------------------------

_TOLERANCE = re.compile(r"(?<![\w.])(atol|rtol)=(?!=)([^,)\s]+)")  # a keyword argument
_EXACT = {"0", "0.0"}
_REASON = "# not rounding:"


def _code_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a Python file, or of the python blocks (visible or invisible) of a Markdown page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".py":
        yield from enumerate(lines, 1)
        return
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not inside:
            inside = stripped == "```python" or stripped.startswith("<!-- invisible-code-block: python")
        elif stripped.startswith("```") or stripped == "-->":
            inside = False
        else:
            yield number, line


def test_no_check_picks_its_own_rounding_tolerance() -> None:
    files = [*ROOT.glob("tests/*.py"), *ROOT.glob("llmdocs/**/*.py"), *ROOT.glob("examples/**/*.py")]
    files += [p for p in ROOT.glob("docs/**/*") if p.suffix in (".md", ".py") and "assets" not in p.parts]
    offenders = []
    for path in sorted(files):
        if path in (ROOT / "llmdocs" / "testing.py", Path(__file__).resolve()):  # the policy; the guard's examples
            continue
        for number, line in _code_lines(path):
            if any(value not in _EXACT for _, value in _TOLERANCE.findall(line)) and _REASON not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, (
        "a literal rounding tolerance outside llmdocs.testing: use assert_equivalent (float64) or "
        f"assert_close(..., depth=n_layers); a tolerance that is not rounding needs a '{_REASON}' comment:\n"
        + "\n".join(offenders)
    )


def test_the_guard_reads_python_files_and_the_python_blocks_of_pages(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("atol=1\n```python\nx = 1  # atol=2\n```\n```text\natol=3\n```\n", encoding="utf-8")
    assert [line for _, line in _code_lines(page)] == ["x = 1  # atol=2"]
    script = tmp_path / "script.py"
    script.write_text("a = 1\nb = 2\n", encoding="utf-8")
    assert list(_code_lines(script)) == [(1, "a = 1"), (2, "b = 2")]
