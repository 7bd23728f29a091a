"""Answer-letter extraction from free-text replies: pure functions with documented rules.

Every rule maps ``(reply, options) -> letter`` where ``letter`` is one of the item's
option letters, or ``""`` when the rule finds no answer (scored as wrong). Rules are
registered by name with a version string; the name and version are written into
every ``metrics.json`` because scores shift between rules.

Rules
-----
``robust`` (the default), tried in order, first hit wins:
  1. the whole reply is one letter, maybe bracketed or punctuated: ``"B"``, ``"b"``, ``"(B)."``;
  2. an answer phrase followed by a letter: ``"The answer is (B)."``, ``"Best option: (C"``,
     ``"answer: b"`` (the last such phrase wins, so reasoning before a final answer is fine);
  3. a leading letter marker: ``"b) dogs"``, ``"B. dogs"``, ``"(B) dogs"``, ``"C: ..."``;
  4. exactly one distinct bracketed letter anywhere: ``"I pick (D) because ..."``;
  5. exactly one distinct standalone capital option letter, where a capital ``A``/``I``
     followed by a lowercase word is read as an article or pronoun ("A man walks" has
     no letter); the ``A`` of ``"At"`` is never a letter;
  6. the reply restates exactly one option's text (case and punctuation ignored).
  Lowercase letters count only in rules 1-3 (or bracketed). Anything else: ``""``.

``lmms_eval_first_capital`` reproduces lmms-eval's older Video-MME parser: remove the
prefixes "The best answer is", "The correct answer is", "The answer is", "The answer"
(case-sensitive; see ``_LEGACY_PREFIXES`` for two that never match); a reply of more
than 10 words with no capital option letter gives ``""``; otherwise the first capital
option letter *anywhere*, so ``"At first ..."`` reads as ``A`` and ``"Best option: C"``
as ``B`` (known flaws). The letters are the item's (``A``-``D`` for Video-MME).
(The 10-word test never changes the result: with no capital letter the answer is empty
at any length, so the implementation needs only the first-capital search.)

``lmms_eval_ranked`` reproduces lmms-eval's newer ranked-candidate parser
(``extract_mcq_answer`` in lmms-eval 0.7): it collects candidates in several forms and
keeps the highest-ranked one, later positions breaking ties: a lone letter at the start
(10) > at the end (9) > after an answer phrase (7) > ``(X)`` (6) > ``X.`` (5) > ``X:`` (4)
> ``X)`` (3) > ``X`` followed by a space (2); only when none match, any capital option
letter anywhere (the last one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vidlm.errors import ConfigError
from vidlm.eval.items import letters_for

ExtractFn = Callable[[str, Sequence[str]], str]


@dataclass(frozen=True)
class ExtractionRule:
    """A named, versioned extraction function ``(reply, options) -> letter or ""``."""

    name: str
    version: str
    summary: str
    fn: ExtractFn

    def __call__(self, reply: str, options: Sequence[str]) -> str:
        return self.fn(reply or "", options)


_RULES: dict[str, ExtractionRule] = {}


def register_rule(name: str, *, version: str, summary: str) -> Callable[[ExtractFn], ExtractFn]:
    def wrap(fn: ExtractFn) -> ExtractFn:
        _RULES[name] = ExtractionRule(name=name, version=version, summary=summary, fn=fn)
        return fn

    return wrap


def get_rule(name: str) -> ExtractionRule:
    if name not in _RULES:
        raise ConfigError(f"unknown extraction rule {name!r}; known: {sorted(_RULES)}")
    return _RULES[name]


def list_rules() -> list[str]:
    return sorted(_RULES)


DEFAULT_RULE = "robust"

# ---------------------------------------------------------------- robust (default)

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_LONE = re.compile(r"[\s(\[*'\"]*([A-Za-z])[\s)\]\.:*,!'\"]*")
_PHRASE = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would be|should be))?\s*[:：\-]?\s*"
    r"(?:option\s+|letter\s+)?([(\[]?)([A-Za-z])(?![A-Za-z])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"[(\[]?([A-Za-z])[)\]\.:](?:\s|$)")
_BRACKETED = re.compile(r"[(\[]([A-Za-z])[)\]]")
_STANDALONE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_WORD_AFTER = re.compile(r" [a-z]")


def _normalise(text: str) -> str:
    """Lowercase, punctuation to spaces, single spaces: for comparing option texts."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _reads_as_word(text: str, pos: int) -> bool:
    """A capital ``A``/``I`` at ``pos`` followed by a lowercase word is an article/pronoun."""
    return text[pos] in "AI" and _WORD_AFTER.match(text, pos + 1) is not None


def _phrase_letter(text: str, letters: str) -> str:
    found = ""
    for m in _PHRASE.finditer(text):
        bracket, ch = m.group(1), m.group(2)
        after = text[m.end(): m.end() + 1]
        if ch.islower() and not bracket and after not in (")", "]", ".", ":", ""):
            continue
        if ch.isupper() and not bracket and _reads_as_word(text, m.start(2)):
            continue
        if ch.upper() in letters:
            found = ch.upper()
    return found


def _unique(found: list[str]) -> str:
    distinct = set(found)
    return found[0] if len(distinct) == 1 else ""


def _option_text_letter(text: str, options: Sequence[str], letters: str) -> str:
    reply = _normalise(text)
    normalised = [_normalise(o) for o in options]
    for letter, opt in zip(letters, normalised, strict=True):
        if opt and reply == opt:
            return letter
    padded = f" {reply} "
    pairs = zip(letters, normalised, strict=True)
    contained = [lt for lt, opt in pairs if opt and f" {opt} " in padded]
    return contained[0] if len(contained) == 1 else ""


@register_rule("robust", version="1.0", summary="lone letter > answer phrase > leading marker > "
               "one bracketed letter > one standalone capital > restated option text")
def extract_robust(reply: str, options: Sequence[str]) -> str:
    letters = letters_for(len(options))
    text = " ".join(_THINK.sub(" ", reply).split())
    if not text:
        return ""
    m = _LONE.fullmatch(text)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    letter = _phrase_letter(text, letters)
    if letter:
        return letter
    m = _LEADING.match(text)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    bracketed = [ch.upper() for ch in _BRACKETED.findall(text) if ch.upper() in letters]
    if bracketed:
        return _unique(bracketed)
    capitals = [m.group(1) for m in _STANDALONE.finditer(text)
                if m.group(1) in letters and not _reads_as_word(text, m.start(1))]
    if capitals:
        return _unique(capitals)
    return _option_text_letter(text, options, letters)


# ------------------------------------------- lmms-eval, older rule (first capital anywhere)

# The prefixes as lmms-eval's Video-MME parser applied them (up to lmms-eval commit
# bd51fabc, before PR #1274 of 2026-04-11). Two missing commas in its source joined
# pairs of prefixes into one string each, so "The best option is" and "Best option:"
# alone are never removed; reproduced as is.
_LEGACY_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option isThe correct option is", "Best answer:Best option:",
)


@register_rule("lmms_eval_first_capital",
               version="1.1 (lmms-eval Video-MME parser up to bd51fabc, before 2026-04-11)",
               summary="strip answer prefixes; >10 words with no capital letter -> empty; "
               "else the first capital option letter anywhere (the 'At' flaw)")
def extract_first_capital(reply: str, options: Sequence[str]) -> str:
    letters = letters_for(len(options))
    text = reply.strip()
    for prefix in _LEGACY_PREFIXES:
        text = text.replace(prefix, "")
    first = re.search(f"[{letters}]", text)
    if first is None:
        return ""
    return first.group(0)


# ------------------------------------------- lmms-eval, newer rule (ranked candidates)

# Phrases after which lmms-eval's ranked parser takes the next capital option letter
# (they are data describing the reproduced behaviour, in its order).
_RANKED_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is",
    "the best answer is", "best answer is", "the correct option is", "correct option is",
    "the best option is", "best option is", "the choice is", "choice is",
    "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is",
    "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)
# (form, rank, template): the letter written in that form.
_RANKED_FORMS = (("bracketed", 6, "({})"), ("period", 5, "{}."), ("colon", 4, "{}:"),
                 ("right_paren", 3, "{})"), ("space", 2, "{} "))
_RANK_START, _RANK_END, _RANK_PHRASE = 10, 9, 7


@register_rule("lmms_eval_ranked",
               version="1.0 (lmms-eval extract_mcq_answer, from 9ca4445d of 2026-04-11; 0.7.3)",
               summary="ranked candidates: lone letter at start > at end > after an answer "
               "phrase > (X) > X. > X: > X) > 'X '; else the last capital letter anywhere")
def extract_ranked(reply: str, options: Sequence[str]) -> str:
    letters = letters_for(len(options))
    if not reply.strip():
        return ""
    text = reply.strip()
    for ch in ",.!?;:'\"":  # stripped one character class at a time, in this order
        text = text.strip(ch)
    text = f" {text} "
    found: list[tuple[int, int, str]] = []  # (rank, position, letter)
    for _form, rank, template in _RANKED_FORMS:
        for letter in letters:
            pos = text.rfind(template.format(letter))
            if pos >= 0:
                found.append((rank, pos, letter))
    lowered = text.lower()
    for phrase in _RANKED_PHRASES:
        at = lowered.find(phrase)
        if at >= 0:
            for letter in letters:
                pos = text.find(letter, at + len(phrase))
                if pos >= 0:
                    found.append((_RANK_PHRASE, pos, letter))
    core = text.strip()
    for letter in letters:
        if core.startswith(letter) and (len(core) == 1 or not core[1].isalpha()):
            found.append((_RANK_START, 0, letter))
        if core.endswith(letter) and (len(core) == 1 or not core[-2].isalpha()):
            found.append((_RANK_END, len(text) - 1, letter))
    if not found:
        found = [(0, text.rfind(letter), letter) for letter in letters if letter in text]
    if not found:
        return ""
    best = max(found, key=lambda c: (c[0], c[1]))
    return best[2]
