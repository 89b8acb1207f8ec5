"""LLaMA-Factory's demo sets: the fetch (safe, atomic, idempotent, verified), the loaders and the split.

Nothing here downloads: the fetch is tested on small tar files built in `tmp_path`, and on an sdist rebuilt from
the cached files. The tests that read the real files skip, with the fetch command as the reason, when the cache
lacks them (`make install` fetches them, so they run in CI).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from llmdocs.data import llamafactory as lf
from llmdocs.data.llamafactory import (
    FETCH_COMMAND,
    LLAMAFACTORY_FILES,
    AlpacaExample,
    ChecksumMismatchError,
    MissingCachedDataError,
    PreferencePair,
    extract_files,
    fetch_llamafactory_data,
    llamafactory_dir,
    load_alpaca,
    load_dpo_pairs,
    split_examples,
    verify_llamafactory_data,
)

TOP = "llamafactory-0.9.5"


@pytest.fixture(scope="module")
def cached() -> Path:
    """The verified folder in the default cache; skip (naming the fetch command) if it is missing."""
    try:
        return verify_llamafactory_data()
    except MissingCachedDataError:
        pytest.skip(f"the llamafactory data is not in the cache: run `{FETCH_COMMAND}` (make install does)")


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A tar.gz with regular files `name -> content` and symbolic links `name -> target`."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.fixture(scope="module")
def real_sdist(cached: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the sdist holding the real files (and one other file), built from the cache."""
    members = {f"{TOP}/{relative}": (cached / relative).read_bytes() for relative in LLAMAFACTORY_FILES}
    members[f"{TOP}/setup.py"] = b"raise SystemExit('never extracted')\n"
    return _tar(tmp_path_factory.mktemp("sdist") / f"{TOP}.tar.gz", members)


# ---- loaders on the real files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "count"), [("en", 999), ("zh", 1000)])
def test_alpaca_counts_and_fields(cached: Path, language: str, count: int) -> None:
    examples = load_alpaca(language)
    assert len(examples) == count
    assert all(isinstance(e, AlpacaExample) for e in examples)
    assert all(e.instruction and e.output for e in examples)  # no empty instruction or answer
    with_input = next(e for e in examples if e.input)
    assert with_input.prompt == with_input.instruction + "\n" + with_input.input  # LLaMA-Factory's rule
    assert [m["role"] for m in with_input.messages(system="Be brief.")] == ["system", "user", "assistant"]
    without = next(e for e in examples if not e.input)
    assert without.messages() == [
        {"role": "user", "content": without.instruction},
        {"role": "assistant", "content": without.output},
    ]


def test_alpaca_first_records(cached: Path) -> None:
    assert load_alpaca("en")[0].instruction == "Describe a process of making crepes."
    assert load_alpaca("zh")[0].instruction == "识别并解释给定列表中的两个科学理论：细胞理论和日心说。"


@pytest.mark.parametrize(("language", "single", "with_system", "multi"), [("en", 114, 80, 106), ("zh", 236, 64, 0)])
def test_dpo_pairs_structure(cached: Path, language: str, single: int, with_system: int, multi: int) -> None:
    pairs = load_dpo_pairs(language)
    assert len(pairs) == 300
    assert all(isinstance(p, PreferencePair) for p in pairs)
    n_single = n_system = n_multi = 0
    for pair in pairs:
        roles = [m["role"] for m in pair.prompt]
        has_system = roles[0] == "system"
        body = roles[1:] if has_system else roles
        assert body == ["user", "assistant"] * (len(body) // 2) + ["user"]  # alternate, end with the user
        assert pair.chosen and pair.rejected and pair.chosen != pair.rejected
        assert pair.chosen_messages() == [*pair.prompt, {"role": "assistant", "content": pair.chosen}]
        assert pair.rejected_messages()[-1] == {"role": "assistant", "content": pair.rejected}
        n_system += has_system
        n_single += len(body) == 1 and not has_system
        n_multi += len(body) > 1
    assert (n_single, n_system, n_multi) == (single, with_system, multi)


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="language must be 'en' or 'zh', got 'fr'"):
        load_alpaca("fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language must be 'en' or 'zh'"):
        load_dpo_pairs(None)  # type: ignore[arg-type]


# ---- split -------------------------------------------------------------------------------------------------------


def test_split_is_seeded_grouped_and_covers_everything(cached: Path) -> None:
    examples = load_alpaca("en")
    parts = split_examples(examples, (0.8, 0.1, 0.1), seed=0)
    assert parts == split_examples(examples, (0.8, 0.1, 0.1), seed=0)  # deterministic
    assert parts != split_examples(examples, (0.8, 0.1, 0.1), seed=1)
    position = {id(e): k for k, e in enumerate(examples)}
    assert sorted(position[id(e)] for part in parts.values() for e in part) == list(range(999))  # a partition
    prompts = {name: {e.prompt for e in part} for name, part in parts.items()}
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["validation"] & prompts["test"]  # duplicated prompts never straddle parts
    assert len(prompts["validation"]) == len(prompts["test"]) == round(0.1 * 985)  # 985 distinct prompts
    for name, part in parts.items():
        assert [position[id(e)] for e in part] == sorted(position[id(e)] for e in part), name  # input order
    reversed_parts = split_examples(examples[::-1], (0.8, 0.1, 0.1), seed=0)
    assert {n: {e.prompt for e in p} for n, p in reversed_parts.items()} == prompts  # independent of input order


def test_split_preference_pairs_by_whole_prompt(cached: Path) -> None:
    pairs = load_dpo_pairs("zh")
    parts = split_examples(pairs, (0.9, 0.1), names=("train", "test"), seed=3)
    assert len(parts["train"]) + len(parts["test"]) == 300
    conversations = {name: {repr(p.prompt) for p in part} for name, part in parts.items()}
    assert not conversations["train"] & conversations["test"]


def test_split_hand_example_and_custom_key() -> None:
    records = ["a1", "a2", "b1", "c1", "c2", "d1"]
    parts = split_examples(records, (0.5, 0.5), seed=0, names=("x", "y"), key=lambda r: r[0])
    groups = {name: {r[0] for r in part} for name, part in parts.items()}
    assert len(groups["x"]) == len(groups["y"]) == 2 and not groups["x"] & groups["y"]
    assert sorted(parts["x"] + parts["y"]) == records


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fractions": (0.5, 0.5)}, ValueError, "one entry per part, got 2 and 3"),
        ({"fractions": (1.2, -0.1, -0.1)}, ValueError, "fractions must be >= 0 and sum to 1"),
        ({"fractions": (0.5, 0.3, 0.1)}, ValueError, "fractions must be >= 0 and sum to 1"),
        ({"names": ("a", "a", "b")}, ValueError, "names must be distinct"),
        ({"seed": "0"}, TypeError, "seed must be an int"),
    ],
)
def test_split_bad_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        split_examples(["a", "b", "c"], **kwargs)


def test_split_needs_a_key_for_unknown_records() -> None:
    with pytest.raises(TypeError, match="cannot find the prompt of a int: pass key="):
        split_examples([1, 2, 3])


# ---- missing and modified files ----------------------------------------------------------------------------------


def test_missing_files_name_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path / "empty"))
    with pytest.raises(MissingCachedDataError) as info:
        load_alpaca("en")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.fetch_command == "python -m llmdocs.data.llamafactory"
    assert "python -m llmdocs.data.llamafactory" in str(info.value)
    assert str(tmp_path / "empty" / TOP / "data" / "alpaca_en_demo.json") in str(info.value)
    with pytest.raises(MissingCachedDataError, match=f"--cache {tmp_path / 'other'}"):
        load_dpo_pairs("zh", cache=tmp_path / "other")  # an explicit cache folder is part of the command


def test_modified_file_is_refused(cached: Path, tmp_path: Path) -> None:
    shutil.copytree(cached, tmp_path / TOP)
    path = tmp_path / TOP / "data" / "alpaca_en_demo.json"
    data = bytearray(path.read_bytes())
    data[100] ^= 1  # one flipped bit in an answer: still valid JSON
    path.write_bytes(bytes(data))
    assert load_dpo_pairs("en", cache=tmp_path)  # the other files still load
    with pytest.raises(ChecksumMismatchError, match=r"alpaca_en_demo.json has SHA-256 \w+, expected bcc37c64"):
        load_alpaca("en", cache=tmp_path)
    with pytest.raises(ChecksumMismatchError, match="--force"):
        verify_llamafactory_data(tmp_path)


# ---- the fetch ---------------------------------------------------------------------------------------------------


def test_fetch_from_a_local_sdist_is_atomic_idempotent_and_repairs(real_sdist: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = fetch_llamafactory_data(cache, archive=real_sdist)
    assert folder == llamafactory_dir(cache) == cache / TOP
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        [*LLAMAFACTORY_FILES, "SHA256SUMS"]
    )  # only the listed files, not setup.py
    assert (folder / "SHA256SUMS").read_text().splitlines()[
        0
    ] == f"{LLAMAFACTORY_FILES['data/alpaca_en_demo.json']}  data/alpaca_en_demo.json"
    assert [p.name for p in cache.iterdir()] == [TOP]  # no temporary folder left behind
    assert len(load_alpaca("zh", cache=cache)) == 1000
    # a second run does nothing: it does not even look at the archive
    assert fetch_llamafactory_data(cache, archive=tmp_path / "absent.tar.gz") == folder
    # a damaged copy is replaced by a verified one
    (folder / "data" / "dpo_en_demo.json").write_text("[]")
    fetch_llamafactory_data(cache, archive=real_sdist)
    assert len(load_dpo_pairs("en", cache=cache)) == 300
    assert [p.name for p in cache.iterdir()] == [TOP]


def test_changed_upload_is_caught_and_leaves_no_trace(tmp_path: Path) -> None:
    members = {f"{TOP}/{relative}": b"[]" for relative in LLAMAFACTORY_FILES}
    sdist = _tar(tmp_path / f"{TOP}.tar.gz", members)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="is not the one llmdocs was checked against"):
        fetch_llamafactory_data(cache, archive=sdist)
    assert list(cache.iterdir()) == []  # nothing half-extracted


def test_sdist_without_a_file_is_refused(tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "partial.tar.gz", {f"{TOP}/LICENSE": b"x"})
    with pytest.raises(ValueError, match=f"has no member '{TOP}/data/alpaca_en_demo.json'"):
        fetch_llamafactory_data(tmp_path / "cache", archive=sdist)
    assert not llamafactory_dir(tmp_path / "cache").exists()


def test_pip_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command[1:6] == ["-m", "pip", "download", "--no-deps", "--no-binary"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(lf.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match=r"pip download --no-deps --no-binary :all: llamafactory==0.9.5` failed"):
        fetch_llamafactory_data(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_main_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lf.main(["--check", "--cache", str(tmp_path)]) == 1
    assert "python -m llmdocs.data.llamafactory --cache" in capsys.readouterr().err
    bad = _tar(tmp_path / "bad.tar.gz", {f"{TOP}/{relative}": b"{}" for relative in LLAMAFACTORY_FILES})
    assert lf.main(["--cache", str(tmp_path / "c"), "--archive", str(bad)]) == 1
    assert "error: could not fetch the llamafactory data" in capsys.readouterr().err


def test_main_fetches_then_does_nothing(real_sdist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lf.main(["--cache", str(tmp_path), "--archive", str(real_sdist)]) == 0
    assert "fetched and verified" in capsys.readouterr().out
    assert lf.main(["--cache", str(tmp_path)]) == 0
    assert "already fetched and verified" in capsys.readouterr().out


# ---- safe extraction ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_filter", [True, False], ids=["tarfile-filter", "python-before-3.11.4"])
def test_extract_refuses_traversal_links_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_filter: bool
) -> None:
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter")  # the code path of a Python without extraction filters
    archive = _tar(
        tmp_path / "evil.tar.gz",
        {"pkg/ok.txt": b"fine", "pkg/../../evil.txt": b"owned", "/abs.txt": b"owned"},
        links={"pkg/data.json": "../../../etc/passwd"},
    )
    out = tmp_path / "deep" / "out"
    with pytest.raises(ValueError, match=r"refusing tar member 'pkg/../../evil.txt': an absolute path or '..'"):
        extract_files(archive, ["pkg/ok.txt", "pkg/../../evil.txt"], out)
    with pytest.raises(ValueError, match=r"refusing tar member '/abs\.txt'"):
        extract_files(archive, ["/abs.txt"], out)
    with pytest.raises(ValueError, match=r"refusing tar member 'pkg/data\.json': it is a link, not a regular file"):
        extract_files(archive, ["pkg/data.json"], out)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not out.exists()  # names are checked before anything is written
    assert [p.read_bytes() for p in extract_files(archive, ["pkg/ok.txt"], out)] == [b"fine"]


def test_extract_refuses_folders_missing_members_and_non_tar_files(tmp_path: Path) -> None:
    archive = tmp_path / "dir.tar"
    folder = tarfile.TarInfo("pkg/sub")
    folder.type = tarfile.DIRTYPE
    with tarfile.open(archive, "w") as tar:
        tar.addfile(folder)
    with pytest.raises(ValueError, match="it is a folder, not a regular file"):
        extract_files(archive, ["pkg/sub"], tmp_path / "out")
    with pytest.raises(ValueError, match="has no member 'pkg/none'"):
        extract_files(archive, ["pkg/none"], tmp_path / "out")
    (tmp_path / "plain.txt").write_text("not a tar")
    with pytest.raises(ValueError, match="is not a tar file"):
        extract_files(tmp_path / "plain.txt", ["x"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        extract_files(tmp_path / "absent.tar", ["x"], tmp_path / "out")
