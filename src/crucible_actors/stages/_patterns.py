"""Guardrail adapters: :class:`NoopAdapter` (the default) and :class:`PatternScanner`.

An adapter is any object with ``scan(examples, opts) -> list[dict]`` (sync or async); the
``guardrails`` stage calls it and counts what it returns. :class:`PatternScanner` finds,
with regular expressions only (no network, no model):

- ``email``: e-mail addresses;
- ``phone``: phone numbers written with a ``+`` country code, or North-American style
  ``555-123-4567`` / ``(555) 123-4567``;
- ``payment_card``: 13 to 19 digit numbers (spaces and dashes allowed) passing the Luhn
  check;
- ``api_key``: common credential formats (AWS access key ids, GitHub, OpenAI/Anthropic
  ``sk-`` keys, Stripe, Slack, Google API keys, JWTs, PEM private keys, and
  ``password=...``-style assignments);
- ``prompt_injection``: a small list of known injection phrases ("ignore previous
  instructions", "reveal your system prompt", ...).

Each violation is ``{"example": index, "field": path, "kind": kind, "rule": rule,
"span": [start, end]}``: ``field`` is the dotted path of the string inside the example
(``"messages.0.content"``), or None when the example itself is a string; ``span`` indexes
that string. The matched text is deliberately left out, so reports and stored metrics do
not copy the secrets they flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

__all__ = ["KINDS", "Finding", "NoopAdapter", "PatternScanner", "luhn_valid"]

#: The kinds :class:`PatternScanner` reports, in priority order: where two matches
#: overlap, the earlier kind wins (a card number is not also reported as a phone number).
KINDS: Final = ("api_key", "payment_card", "email", "phone", "prompt_injection")


class NoopAdapter:
    """The default guardrail adapter: reports no violations."""

    def scan(
        self, examples: list[Any], opts: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Return ``[]``."""
        return []


class Finding(NamedTuple):
    """One match inside a string."""

    kind: str
    rule: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """Return whether the digit string passes the Luhn checksum (used by payment cards)."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_I = re.IGNORECASE

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)

_PHONES: Final = (
    ("international", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w])")),
    (
        "north_american",
        re.compile(r"(?<![\w+(])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)"),
    ),
)

_CARD = re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d])")

_API_KEYS: Final = (
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    (
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ),
    ("sk_secret_key", re.compile(r"(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("stripe_key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    (
        "secret_assignment",
        re.compile(
            r"\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|"
            r"client[_-]?secret|password|passwd)\b\s*[:=]\s*['\"]?[^\s'\"]{8,}",
            _I,
        ),
    ),
)

_ANY_OF = r"(?:all\s+|any\s+|of\s+)*(?:the\s+|your\s+|my\s+)?"
_INJECTIONS: Final = (
    (
        "ignore_previous_instructions",
        re.compile(
            rf"\bignore\s+{_ANY_OF}(?:previous|prior|above|earlier|preceding|system)\s+"
            r"(?:instructions?|prompts?|rules|directions|messages)\b",
            _I,
        ),
    ),
    (
        "disregard_instructions",
        re.compile(
            rf"\bdisregard\s+{_ANY_OF}(?:(?:previous|prior|above|earlier|preceding)\s+)?"
            r"(?:instructions?|prompts?|rules|directions|guidelines)\b",
            _I,
        ),
    ),
    (
        "forget_instructions",
        re.compile(
            r"\bforget\s+(?:all\s+|everything\s+(?:about\s+)?)?(?:your|the|previous|prior)\s+"
            r"(?:instructions|rules|guidelines|training)\b",
            _I,
        ),
    ),
    (
        "reveal_system_prompt",
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|leak|tell)\s+(?:me\s+)?(?:your|the)\s+"
            r"(?:system\s+prompt|hidden\s+instructions|initial\s+instructions|"
            r"original\s+instructions)\b",
            _I,
        ),
    ),
    (
        "role_override",
        re.compile(
            r"\byou\s+are\s+now\s+(?:DAN\b|in\s+developer\s+mode\b|an?\s+unrestricted\b|"
            r"jailbroken\b)",
            _I,
        ),
    ),
    ("do_anything_now", re.compile(r"\bdo\s+anything\s+now\b", _I)),
    ("developer_mode", re.compile(r"\b(?:enable|activate|enter)\s+developer\s+mode\b", _I)),
    (
        "no_restrictions",
        re.compile(
            r"\bpretend\s+(?:that\s+)?you\s+(?:have|are\s+under)\s+no\s+"
            r"(?:restrictions|rules|guidelines|filters)\b",
            _I,
        ),
    ),
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _find_all(text: str) -> list[Finding]:
    found: list[Finding] = []
    for rule, pattern in _API_KEYS:
        found += [Finding("api_key", rule, m.start(), m.end()) for m in pattern.finditer(text)]
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(Finding("payment_card", "luhn", m.start(), m.end()))
    found += [Finding("email", "email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    for rule, pattern in _PHONES:
        for m in pattern.finditer(text):
            if 7 <= len(_digits(m.group())) <= 15:
                found.append(Finding("phone", rule, m.start(), m.end()))
    for rule, pattern in _INJECTIONS:
        found += [
            Finding("prompt_injection", rule, m.start(), m.end()) for m in pattern.finditer(text)
        ]
    return found


def _overlaps(a: Finding, b: Finding) -> bool:
    return a.start < b.end and b.start < a.end


class PatternScanner:
    """A guardrail adapter that flags PII, secrets and prompt-injection phrases by pattern.

    ``kinds`` limits the scan to some of the kinds it knows (``api_key``,
    ``payment_card``, ``email``, ``phone``, ``prompt_injection``); ``fields`` limits it to those
    top-level keys of dict examples (default: every string, nested ones included).

    Raises:
        ValueError: an unknown kind.
    """

    def __init__(
        self, *, kinds: Iterable[str] | None = None, fields: Iterable[str] | None = None
    ) -> None:
        chosen = tuple(KINDS if kinds is None else kinds)
        unknown = [k for k in chosen if k not in KINDS]
        if unknown:
            raise ValueError(
                f"unknown guardrail kind(s) {', '.join(map(repr, unknown))}; "
                f"expected any of: {', '.join(KINDS)}"
            )
        self.kinds = frozenset(chosen)
        self.fields = None if fields is None else tuple(fields)

    def scan_text(self, text: str) -> list[Finding]:
        """Return the findings in ``text``, ordered by position; overlaps resolved by kind."""
        kept: list[Finding] = []
        for finding in sorted(_find_all(text), key=lambda f: KINDS.index(f.kind)):
            if finding.kind not in self.kinds:
                continue
            if finding.kind != "prompt_injection" and any(
                k.kind != "prompt_injection" and _overlaps(k, finding) for k in kept
            ):
                continue
            if any(k.kind == finding.kind and _overlaps(k, finding) for k in kept):
                continue
            kept.append(finding)
        return sorted(kept, key=lambda f: (f.start, f.end, KINDS.index(f.kind)))

    def scan(
        self, examples: list[Any], opts: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Return the violations of ``examples``, by example, then field, then position."""
        violations: list[dict[str, Any]] = []
        for index, example in enumerate(examples):
            for field, text in self._strings(example):
                violations += [
                    {
                        "example": index,
                        "field": field,
                        "kind": f.kind,
                        "rule": f.rule,
                        "span": [f.start, f.end],
                    }
                    for f in self.scan_text(text)
                ]
        return violations

    def _strings(self, example: Any) -> list[tuple[str | None, str]]:
        if isinstance(example, str):
            return [(None, example)]
        if isinstance(example, Mapping):
            out: list[tuple[str | None, str]] = []
            keys = self.fields if self.fields is not None else list(example)
            for key in keys:
                if key in example:
                    _walk(example[key], str(key), out)
            return out
        out = []
        if isinstance(example, list | tuple):
            for i, item in enumerate(example):
                _walk(item, str(i), out)
        return out


def _walk(value: Any, path: str, out: list[tuple[str | None, str]]) -> None:
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, f"{path}.{key}", out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}.{i}", out)
