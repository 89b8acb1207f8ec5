"""LLaMA-Factory's demo instruction sets (Alpaca, en/zh) and preference pairs (en/zh), fetched once into the cache.

The `llamafactory` package ships four small data sets that make good first SFT and DPO data, but only in its
source distribution, and only on PyPI (no wheel, no download at run time): `make install` runs
`python -m llmdocs.data.llamafactory`, which asks pip for the sdist
(`pip download --no-deps --no-binary :all: llamafactory==0.9.5`) and copies six files out of it into
`<cache>/llamafactory-0.9.5/` (the cache is [`cache_dir()`][llmdocs.data.cache.cache_dir], `$LLMDOCS_CACHE` when
set):

| file | records | format |
|---|---|---|
| `data/alpaca_en_demo.json` | 999 (985 distinct prompts) | Alpaca: `{"instruction", "input", "output"}` |
| `data/alpaca_zh_demo.json` | 1,000 (992 distinct prompts) | the same, in Chinese |
| `data/dpo_en_demo.json` | 300 | ShareGPT with a ranking: `{"conversations", "chosen", "rejected"}` |
| `data/dpo_zh_demo.json` | 300 | the same, in Chinese |
| `data/README.md`, `LICENSE` | | the data folder's format description; the repository's Apache-2.0 licence |

In the preference files `conversations` is a list of `{"from": "system" | "human" | "gpt", "value": ...}` turns:
an optional system prompt, then human and gpt turns alternating and ending with a human turn (1 to 13 turns;
114 English pairs have one turn, 57 have five). `chosen` and `rejected` are one `{"from": "gpt", "value": ...}`
answer each to that last human turn. [`load_dpo_pairs`][llmdocs.data.llamafactory.load_dpo_pairs] turns them
into chat messages with the roles chat templates use (`system`, `user`, `assistant`).

An Alpaca record becomes one user turn, `instruction + "\\n" + input` (just `instruction` when `input` is empty),
and one assistant turn, `output`: LLaMA-Factory's own rule (its `AlpacaDatasetConverter`).

**Safety of the fetch.** Only the six files are read from the archive, each checked to be a regular file and
extracted with tarfile's `"data"` filter (no absolute paths, no `..`, no links, no devices); they are written to
a temporary folder, checked against SHA-256 digests pinned in `LLAMAFACTORY_FILES`, recorded in a `SHA256SUMS`
file and only then renamed into place, so the folder is either complete and verified or absent. A second run
finds the verified folder and does nothing. The loaders check the digest of every file they read, so an edited
or truncated file is refused, not silently trained on.

Licences: see `LLAMAFACTORY_ATTRIBUTION`. The repository is Apache-2.0; the Alpaca examples are Alpaca-GPT4 data
(GPT-4 answers to the Alpaca instructions), CC BY-NC 4.0: research and teaching, not commercial use.

References:
    Zheng et al., "LlamaFactory: Unified Efficient Fine-Tuning of 100+ Language Models", ACL 2024 (System
    Demonstrations); Peng et al., "Instruction Tuning with GPT-4", 2023 (the Alpaca-GPT4 data); Taori et al.,
    "Stanford Alpaca: An Instruction-following LLaMA Model", 2023 (the instructions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

from llmdocs.data.cache import cache_dir
from llmdocs.data.instructions import Message, alpaca_prompt, instruction_messages

__all__ = [
    "FETCH_COMMAND",
    "LLAMAFACTORY_ATTRIBUTION",
    "LLAMAFACTORY_FILES",
    "LLAMAFACTORY_VERSION",
    "AlpacaExample",
    "ChecksumMismatchError",
    "MissingCachedDataError",
    "PreferencePair",
    "extract_files",
    "fetch_llamafactory_data",
    "llamafactory_dir",
    "load_alpaca",
    "load_dpo_pairs",
    "split_examples",
    "verify_llamafactory_data",
]

LLAMAFACTORY_VERSION = "0.9.5"
"""The pinned version of the `llamafactory` sdist."""
_TOP = f"llamafactory-{LLAMAFACTORY_VERSION}"  # the sdist's top folder, and the name of the cached folder
LLAMAFACTORY_FILES: dict[str, str] = {
    "data/alpaca_en_demo.json": "bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318",
    "data/alpaca_zh_demo.json": "d5a4be46ae70d23a461ffc16048069324c0865ee9aa0c8730e21ac4b65ea0f08",
    "data/dpo_en_demo.json": "b949be2421cfa62744afcf1b479f95b299d643d1a4c1c97d1341b314a1aa5cb3",
    "data/dpo_zh_demo.json": "9ea7206bc1a45df8b7811d1fc02d5555c65379d05905f343da88f221ff145376",
    "data/README.md": "ab8669383cc3c6a1b64ed9a48ba5819c74c5d38bac6b7a41615337da543de508",
    "LICENSE": "50e6751797c50dedd75ef1b8a0d9e42f5f8472e9fbce91f34718e9f97b0c780a",
}
"""Path inside the sdist's top folder -> SHA-256 of the file in `llamafactory==0.9.5` (checked 2026-11-30)."""
FETCH_COMMAND = "python -m llmdocs.data.llamafactory"
"""The command that fetches the files into the cache (`make install` runs it)."""
_SUMS = "SHA256SUMS"  # the record written beside the files, in `sha256sum` format
LLAMAFACTORY_ATTRIBUTION = (
    "Demo data sets of LLaMA-Factory 0.9.5 (hiyouga/LLaMA-Factory, Zheng et al., 2024; Apache-2.0), from the "
    "source distribution of the PyPI package llamafactory: alpaca_en_demo.json (999) and alpaca_zh_demo.json "
    "(1,000) are Alpaca-GPT4 data (Peng et al., 2023: GPT-4 answers to the Stanford Alpaca instructions, and their "
    "Chinese translation), licensed CC BY-NC 4.0, for research and teaching, not commercial use; "
    "dpo_en_demo.json and dpo_zh_demo.json (300 preference pairs each) carry no separate licence or source in the "
    "package, so treat them the same way."
)
"""The credit and licence line for pages that show or train on these sets."""

Language = Literal["en", "zh"]


class MissingCachedDataError(FileNotFoundError):
    """The fetched files are not in the cache; the message and `fetch_command` say how to get them.

    Attributes:
        fetch_command: e.g. `python -m llmdocs.data.llamafactory`.
    """

    def __init__(self, message: str, fetch_command: str) -> None:
        super().__init__(f"{message}; fetch them with:\n    {fetch_command}\n(`make install` runs it)")
        self.fetch_command = fetch_command


class ChecksumMismatchError(ValueError):
    """A file's SHA-256 is not the pinned one: it was edited, truncated, or the upload changed."""


@dataclass(frozen=True)
class AlpacaExample:
    """One Alpaca record: an instruction, an optional input, and the reference answer.

    Attributes:
        instruction: The task, e.g. `"Describe a process of making crepes."`.
        input: Extra context for the task, often `""`.
        output: The answer the model should learn.
    """

    instruction: str
    input: str
    output: str

    @property
    def prompt(self) -> str:
        """The user turn: `instruction + "\\n" + input`, or `instruction` alone when `input` is empty."""
        return alpaca_prompt(self.instruction, self.input)

    def messages(self, system: str | None = None) -> list[Message]:
        """The record as a conversation: an optional system turn, the user turn, the assistant's `output`.

        Examples:
            >>> AlpacaExample("Add the numbers.", "2 and 3", "5").messages()
            [{'role': 'user', 'content': 'Add the numbers.\\n2 and 3'}, {'role': 'assistant', 'content': '5'}]
        """
        return instruction_messages(self.prompt, self.output, system)


@dataclass(frozen=True)
class PreferencePair:
    """One preference record: a conversation so far, a better and a worse answer to its last user turn.

    Attributes:
        prompt: The turns before the answer: an optional `system` turn, then `user` and `assistant` turns
            alternating, ending with a `user` turn.
        chosen: The preferred assistant answer.
        rejected: The dispreferred assistant answer.
    """

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str

    def chosen_messages(self) -> list[Message]:
        """`prompt` followed by the chosen answer as an assistant turn."""
        return [*self.prompt, {"role": "assistant", "content": self.chosen}]

    def rejected_messages(self) -> list[Message]:
        """`prompt` followed by the rejected answer as an assistant turn."""
        return [*self.prompt, {"role": "assistant", "content": self.rejected}]


def llamafactory_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the fetched files: `<cache>/llamafactory-0.9.5` (not created here).

    Args:
        cache: The cache folder; defaults to [`cache_dir()`][llmdocs.data.cache.cache_dir].

    Examples:
        >>> llamafactory_dir("/tmp/c").as_posix()
        '/tmp/c/llamafactory-0.9.5'
    """
    return (Path(cache) if cache is not None else cache_dir()) / _TOP


def _fetch_command(cache: str | os.PathLike[str] | None) -> str:
    return FETCH_COMMAND if cache is None else f"{FETCH_COMMAND} --cache {os.fspath(cache)}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_verified(relative: str, folder: Path, cache: str | os.PathLike[str] | None) -> bytes:
    """The bytes of one fetched file, refused unless their SHA-256 is the pinned one."""
    path = folder / relative
    if not path.is_file():
        raise MissingCachedDataError(
            f"{relative} of llamafactory=={LLAMAFACTORY_VERSION} is not in the cache ({path})", _fetch_command(cache)
        )
    data = path.read_bytes()
    if _sha256(data) != LLAMAFACTORY_FILES[relative]:
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {_sha256(data)}, expected {LLAMAFACTORY_FILES[relative]}: the file was changed; "
            f"fetch it again with `{_fetch_command(cache)} --force`"
        )
    return data


def verify_llamafactory_data(cache: str | os.PathLike[str] | None = None) -> Path:
    """Check that every file of `LLAMAFACTORY_FILES` is in the cache with its pinned SHA-256.

    Args:
        cache: The cache folder; defaults to [`cache_dir()`][llmdocs.data.cache.cache_dir].

    Returns:
        The verified folder, `<cache>/llamafactory-0.9.5`.

    Raises:
        MissingCachedDataError: If a file is missing (the message has the fetch command).
        ChecksumMismatchError: If a file's digest differs.

    Examples:
        >>> verify_llamafactory_data().name
        'llamafactory-0.9.5'
    """
    folder = llamafactory_dir(cache)
    for relative in LLAMAFACTORY_FILES:
        _read_verified(relative, folder, cache)
    return folder


# ---- fetching ----------------------------------------------------------------------------------------------------


def extract_files(
    archive: str | os.PathLike[str], names: Sequence[str], destination: str | os.PathLike[str]
) -> list[Path]:
    """Extract only the named regular files of a tar archive, refusing anything that could escape `destination`.

    Each name must be a relative path without `..`; its member must be a regular file (not a link, folder or
    device). Extraction goes through tarfile's `"data"` filter as a second line of defence (Python >= 3.11.4).

    Args:
        archive: A tar file (any compression tarfile reads, e.g. `.tar.gz`).
        names: Member names, e.g. `["llamafactory-0.9.5/LICENSE"]`.
        destination: The folder to extract into (created if needed).

    Returns:
        The extracted paths, `destination / name`, in the order of `names`.

    Raises:
        FileNotFoundError: If `archive` does not exist.
        ValueError: If `archive` is not a tar file, a name is absolute or has `..`, a member is missing or is not a
            regular file.

    Examples:
        >>> import io, tarfile
        >>> with tarfile.open("demo.tar", "w") as tar:
        ...     info = tarfile.TarInfo("pkg/hello.txt"); info.size = 2
        ...     tar.addfile(info, io.BytesIO(b"hi"))
        >>> [p.read_text() for p in extract_files("demo.tar", ["pkg/hello.txt"], "out")]
        ['hi']
        >>> extract_files("demo.tar", ["pkg/../../etc/passwd"], "out")
        Traceback (most recent call last):
        ...
        ValueError: refusing tar member 'pkg/../../etc/passwd': an absolute path or '..' could write outside out
    """
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    for name in names:
        parts = PurePosixPath(name).parts
        if not name or name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or ".." in parts:
            raise ValueError(
                f"refusing tar member {name!r}: an absolute path or '..' could write outside {destination}"
            )
    paths = []
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below; open's error gets its own message
    except tarfile.ReadError as err:
        raise ValueError(f"archive {archive} is not a tar file: {err}") from err
    with tar:
        for name in names:
            try:
                member = tar.getmember(name)
            except KeyError:
                raise ValueError(f"archive {archive} has no member {name!r}") from None
            if not member.isfile():
                kind = "link" if member.issym() or member.islnk() else "folder" if member.isdir() else "special file"
                raise ValueError(f"refusing tar member {name!r}: it is a {kind}, not a regular file")
            path = destination / name
            if hasattr(tarfile, "data_filter"):
                destination.mkdir(parents=True, exist_ok=True)
                try:
                    tar.extract(member, destination, filter="data")
                except tarfile.FilterError as err:
                    raise ValueError(f"refusing tar member {name!r}: {err}") from err
            else:  # Python < 3.11.4 has no filters; the checks above already allow only a regular file at a safe path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
            paths.append(path)
    return paths


def _download_sdist(folder: Path) -> Path:
    """Run `pip download` for the sdist into `folder`; return the archive."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--quiet", f"llamafactory=={LLAMAFACTORY_VERSION}", "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    shown = f"pip download --no-deps --no-binary :all: llamafactory=={LLAMAFACTORY_VERSION}"
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{shown}` failed (exit status {result.returncode}):\n{tail}")
    archives = sorted(folder.glob("llamafactory-*.tar.gz"))
    if len(archives) != 1:
        raise RuntimeError(f"`{shown}` left {[a.name for a in archives]} in {folder}, expected one .tar.gz sdist")
    return archives[0]


def fetch_llamafactory_data(
    cache: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Put the verified data files of `llamafactory==0.9.5` into the cache, unless they are already there.

    Steps: if `<cache>/llamafactory-0.9.5` verifies and not `force`, return it (nothing else runs). Otherwise
    download the sdist with pip (or use `archive`), extract the files of `LLAMAFACTORY_FILES` into a temporary
    folder of the cache, check their SHA-256, write `SHA256SUMS`, and rename the folder into place (an older,
    broken copy is replaced).

    Args:
        cache: The cache folder; defaults to [`cache_dir()`][llmdocs.data.cache.cache_dir].
        archive: A local copy of `llamafactory-0.9.5.tar.gz` to use instead of downloading.
        force: Fetch again even if the folder verifies.

    Returns:
        The folder, `<cache>/llamafactory-0.9.5`.

    Raises:
        RuntimeError: If pip fails (the message has pip's last lines).
        ValueError: If the archive is not a tar file or lacks a file (see
            [`extract_files`][llmdocs.data.llamafactory.extract_files]).
        ChecksumMismatchError: If an extracted file's SHA-256 is not the pinned one (the upload changed); the
            cache is left as it was.

    Examples:
        A tampered sdist (the right names, other contents) is refused, and the cache stays empty:

        >>> import io, tarfile
        >>> with tarfile.open("llamafactory-0.9.5.tar.gz", "w:gz") as tar:
        ...     for relative in LLAMAFACTORY_FILES:
        ...         info = tarfile.TarInfo(f"llamafactory-0.9.5/{relative}"); info.size = 2
        ...         tar.addfile(info, io.BytesIO(b"[]"))
        >>> fetch_llamafactory_data("cache", archive="llamafactory-0.9.5.tar.gz")
        Traceback (most recent call last):
        ...
        llmdocs.data.llamafactory.ChecksumMismatchError: data/alpaca_en_demo.json in llamafactory-0.9.5.tar.gz ...
        >>> list(Path("cache").iterdir())
        []
    """
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {type(force).__name__}")
    target = llamafactory_dir(cache)
    if not force:
        try:
            return verify_llamafactory_data(cache)
        except (MissingCachedDataError, ChecksumMismatchError):
            pass  # absent or broken: fetch
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{_TOP}-", dir=target.parent) as tmp:  # same file system: atomic rename
        work = Path(tmp)
        sdist = Path(archive) if archive is not None else _download_sdist(work / "download")
        extract_files(sdist, [f"{_TOP}/{relative}" for relative in LLAMAFACTORY_FILES], work / "staging")
        staged = work / "staging" / _TOP
        for relative, expected in LLAMAFACTORY_FILES.items():
            digest = _sha256((staged / relative).read_bytes())
            if digest != expected:
                raise ChecksumMismatchError(
                    f"{relative} in {sdist.name} has SHA-256 {digest}, expected {expected}: the uploaded "
                    f"llamafactory=={LLAMAFACTORY_VERSION} is not the one llmdocs was checked against"
                )
        sums = "".join(f"{digest}  {relative}\n" for relative, digest in LLAMAFACTORY_FILES.items())
        (staged / _SUMS).write_text(sums, encoding="utf-8")
        if target.exists():
            target.rename(work / "replaced")  # removed with the temporary folder
        try:
            staged.rename(target)
        except OSError:
            # another process won the race: its copy is good if it verifies (else this raises)
            return verify_llamafactory_data(cache)
    return target


# ---- loaders -----------------------------------------------------------------------------------------------------


def _check_language(language: object) -> Language:
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    return language  # type: ignore[return-value]


def _load_json(relative: str, cache: str | os.PathLike[str] | None) -> list[dict[str, object]]:
    records = json.loads(_read_verified(relative, llamafactory_dir(cache), cache))
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ValueError(f"{relative}: expected a JSON list of objects")
    return records


def load_alpaca(language: Language = "en", cache: str | os.PathLike[str] | None = None) -> list[AlpacaExample]:
    """The Alpaca-GPT4 demo instructions of LLaMA-Factory, in file order.

    Licence: CC BY-NC 4.0 (see `LLAMAFACTORY_ATTRIBUTION`).

    Args:
        language: `"en"` (999 records) or `"zh"` (1,000 records).
        cache: The cache folder; defaults to [`cache_dir()`][llmdocs.data.cache.cache_dir].

    Returns:
        The records; `input` is `""` for 587 of the English and 861 of the Chinese ones.

    Raises:
        ValueError: If `language` is not `"en"` or `"zh"`, or a record lacks a string field.
        MissingCachedDataError: If the file is not in the cache (the message has the fetch command).
        ChecksumMismatchError: If the file was changed.

    Examples:
        >>> examples = load_alpaca("en")
        >>> len(examples), examples[0].instruction
        (999, 'Describe a process of making crepes.')
        >>> len(load_alpaca("zh"))
        1000
    """
    language = _check_language(language)
    relative = f"data/alpaca_{language}_demo.json"
    examples = []
    for index, record in enumerate(_load_json(relative, cache)):
        fields = [record.get(name) for name in ("instruction", "input", "output")]
        if not all(isinstance(field, str) for field in fields):
            raise ValueError(f"{relative}[{index}]: expected string fields instruction, input, output")
        examples.append(AlpacaExample(*fields))  # type: ignore[arg-type]
    return examples


_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}  # ShareGPT's names -> chat-template roles


def _preference_pair(record: dict[str, object], where: str) -> PreferencePair:
    turns, chosen, rejected = record.get("conversations"), record.get("chosen"), record.get("rejected")
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: expected a non-empty list 'conversations'")
    prompt: list[Message] = []
    for position, turn in enumerate(turns):
        role = _ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise ValueError(f"{where}: turn {position} is not {{'from': system|human|gpt, 'value': str}}")
        prompt.append({"role": role, "content": turn["value"]})  # type: ignore[typeddict-item]
    body = prompt[1:] if prompt[0]["role"] == "system" else prompt
    expected = ["user" if k % 2 == 0 else "assistant" for k in range(len(body))]
    if [m["role"] for m in body] != expected or expected[-1] != "user":
        raise ValueError(f"{where}: after an optional system turn, human and gpt must alternate and end with human")
    answers = []
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(answer, dict) or answer.get("from") != "gpt" or not isinstance(answer.get("value"), str):
            raise ValueError(f"{where}: expected {name!r} to be {{'from': 'gpt', 'value': str}}")
        answers.append(answer["value"])
    return PreferencePair(tuple(prompt), answers[0], answers[1])


def load_dpo_pairs(language: Language = "en", cache: str | os.PathLike[str] | None = None) -> list[PreferencePair]:
    """LLaMA-Factory's demo preference pairs (ShareGPT format with a ranking) as chat messages, in file order.

    Roles are renamed for chat templates: `human` -> `user`, `gpt` -> `assistant`, `system` stays.

    Args:
        language: `"en"` or `"zh"` (300 pairs each).
        cache: The cache folder; defaults to [`cache_dir()`][llmdocs.data.cache.cache_dir].

    Returns:
        The pairs. English: 114 single-turn prompts, 80 with a system turn, 106 multi-turn conversations;
        Chinese: 236 single-turn, 64 with a system turn.

    Raises:
        ValueError: If `language` is not `"en"` or `"zh"`, or a record does not have the structure above.
        MissingCachedDataError: If the file is not in the cache (the message has the fetch command).
        ChecksumMismatchError: If the file was changed.

    Examples:
        >>> pair = load_dpo_pairs("en")[0]
        >>> [m["role"] for m in pair.prompt], pair.chosen_messages()[-1]["role"]
        (['user'], 'assistant')
    """
    language = _check_language(language)
    relative = f"data/dpo_{language}_demo.json"
    return [_preference_pair(r, f"{relative}[{i}]") for i, r in enumerate(_load_json(relative, cache))]


# ---- splitting ---------------------------------------------------------------------------------------------------

T = TypeVar("T")


def _prompt_key(example: object) -> str:
    """The text that defines a duplicate: the prompt of a record (an Alpaca prompt, a whole conversation)."""
    if isinstance(example, str):
        return example
    if isinstance(example, PreferencePair):
        return json.dumps(list(example.prompt), ensure_ascii=False, sort_keys=True)
    prompt = getattr(example, "prompt", None)
    if isinstance(prompt, str):
        return prompt
    raise TypeError(f"split_examples cannot find the prompt of a {type(example).__name__}: pass key=")


def split_examples(
    examples: Sequence[T],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    names: Sequence[str] = ("train", "validation", "test"),
    key: Callable[[T], str] | None = None,
) -> dict[str, list[T]]:
    """Split records into parts by prompt: records with the same prompt always land in the same part.

    The 999 English Alpaca records have 985 distinct prompts; split record by record, a repeated instruction
    could be trained on and then "held out". Here the distinct keys are sorted (so the split does not depend on
    the input order), shuffled with `random.Random(seed)` and cut: part `k` gets `round(fractions[k] * n_keys)`
    keys, the first part the remainder. Each part keeps the input order.

    Args:
        examples: The records.
        fractions: One fraction per part, each >= 0, summing to 1.
        seed: Seed of the shuffle.
        names: One name per part, distinct.
        key: The text that groups records; by default the prompt (`AlpacaExample.prompt`, a `PreferencePair`'s
            whole `prompt`, any object's `prompt` string, or a string itself).

    Returns:
        `name -> records`; every record is in exactly one part.

    Raises:
        ValueError: If `fractions` and `names` differ in length or are empty, a fraction is negative, they do not
            sum to 1, or names repeat.
        TypeError: If `seed` is not an int, or no `key` is given and a record has no prompt.

    Examples:
        >>> records = ["a", "b", "a", "c", "d"]
        >>> parts = split_examples(records, (0.5, 0.5), seed=0, names=("x", "y"))
        >>> sorted(parts["x"] + parts["y"]) == sorted(records), parts["x"].count("a") in (0, 2)
        (True, True)
    """
    if len(fractions) != len(names) or not names:
        raise ValueError(f"fractions and names need one entry per part, got {len(fractions)} and {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"names must be distinct, got {tuple(names)}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    keys = [(key or _prompt_key)(example) for example in examples]
    distinct = sorted(set(keys))
    random.Random(seed).shuffle(distinct)
    sizes = [round(f * len(distinct)) for f in fractions[1:]]
    if sum(sizes) > len(distinct):  # rounding up several small parts of very few keys
        raise ValueError(f"{len(distinct)} distinct prompts are too few for the fractions {tuple(fractions)}")
    part_of, start = {}, len(distinct) - sum(sizes)  # the first part takes the rounding remainder
    for k in distinct[:start]:
        part_of[k] = names[0]
    for name, size in zip(names[1:], sizes, strict=True):
        for k in distinct[start : start + size]:
            part_of[k] = name
        start += size
    parts: dict[str, list[T]] = {name: [] for name in names}
    for example, k in zip(examples, keys, strict=True):
        parts[part_of[k]].append(example)
    return parts


# ---- command line ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmdocs.data.llamafactory [--cache DIR] [--archive SDIST] [--force] [--check]`.

    Fetches the files (see [`fetch_llamafactory_data`][llmdocs.data.llamafactory.fetch_llamafactory_data]), or
    with `--check` only verifies them. Prints what it did; on failure prints the reason to stderr.

    Returns:
        The exit status: 0 on success, 1 on failure.

    Examples:
        >>> main(["--check"])  # doctest: +ELLIPSIS
        llamafactory data verified: .../llamafactory-0.9.5
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m llmdocs.data.llamafactory",
        description=f"Fetch the demo data sets of llamafactory=={LLAMAFACTORY_VERSION} (its sdist) into the cache.",
    )
    parser.add_argument("--cache", help="cache folder (default: $LLMDOCS_CACHE, else ~/.cache/llmdocs)")
    parser.add_argument("--archive", help="use this llamafactory-0.9.5.tar.gz instead of downloading it")
    parser.add_argument("--force", action="store_true", help="fetch again even if the files verify")
    parser.add_argument("--check", action="store_true", help="only verify the cached files; exit 1 if they fail")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(f"llamafactory data verified: {verify_llamafactory_data(args.cache)}")
            return 0
        try:
            folder = None if args.force else verify_llamafactory_data(args.cache)
        except (MissingCachedDataError, ChecksumMismatchError):
            folder = None
        if folder is not None:
            print(f"llamafactory data already fetched and verified: {folder}")
            return 0
        source = args.archive or f"pip download --no-deps --no-binary :all: llamafactory=={LLAMAFACTORY_VERSION}"
        print(f"fetching the llamafactory data from {source} ...", flush=True)
        folder = fetch_llamafactory_data(args.cache, archive=args.archive, force=args.force)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"error: could not fetch the llamafactory data: {err}", file=sys.stderr)
        return 1
    print(f"llamafactory data fetched and verified: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
