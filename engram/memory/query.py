"""The query language: ``sp.query(text)``, a small text form of recall, spread and consolidate.

Grammar (keywords are case-insensitive; strings in double or single quotes with
backslash escapes; a vector is a bracketed list of numbers):

    RECALL cue [MODE similarity|spreading|hybrid] [WHERE condition (AND condition)*] [LIMIT n]
        cue       := "text" | [0.1, 0.2, ...] | memory_id
        condition := content CONTAINS "text"
                   | created BEFORE time | created AFTER time      (time: ISO 8601, quoted or bare)
                   | confidence (> | >= | < | <=) number
    SPREAD FROM memory_id [MAX_HOPS n] [DECAY d] [THRESHOLD t]
    CONSOLIDATE [MAX_EPISODES n]

``RECALL memory_id`` uses that memory's embedding as the cue (its content when it
has none). ``content CONTAINS`` and ``confidence`` filter the hits after ranking:
the executor asks for more hits until LIMIT pass or the space has no more.

PREDICT and IMAGINE are recognised and refused: the engine has no generative model,
so anything they returned would be a recall under another name.

Errors are ``QueryError`` (a ValidationError) naming the position (0-based
character offset) and, where one is close, a suggestion: "Unknown operation 'RECAL'
at position 0. Did you mean 'RECALL'?". Parsing is a single left-to-right pass with
one regular expression per token (a typical query parses in a few microseconds).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, List

from engram.errors import ValidationError

OPERATIONS = ("RECALL", "SPREAD", "CONSOLIDATE")
REFUSED_OPERATIONS = ("PREDICT", "IMAGINE")
RECALL_CLAUSES = ("MODE", "WHERE", "LIMIT")
SPREAD_CLAUSES = ("MAX_HOPS", "DECAY", "THRESHOLD")
FIELDS = ("content", "created", "confidence")
MODES = ("similarity", "spreading", "hybrid")
LIMIT_DEFAULT = 10
LIMIT_MAX = 10_000
VECTOR_LENGTH_MAX = 65_536

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<vector>\[[^\]]*\])
      | (?P<op>>=|<=|>|<|=)
      | (?P<word>[A-Za-z0-9_.:+\-]+)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_MEMORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class QueryError(ValidationError):
    """A query that does not parse or names something that does not exist; ``position`` is
    the 0-based character offset of the problem, ``suggestion`` a close alternative or None."""

    def __init__(self, message: str, position: int, suggestion: str | None, allowed: str, example: str) -> None:
        text = f"{message} at position {position}."
        if suggestion is not None:
            text += f" Did you mean '{suggestion}'?"
        super().__init__("query", text, allowed, example)
        self.position = position
        self.suggestion = suggestion
        self.args = (f"{text} Allowed: {allowed}. Example: {example}",)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "string", "vector", "op", "word", "end"
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class RecallQuery:
    text: str | None = None
    vector: tuple[float, ...] | None = None
    memory_id: str | None = None
    mode: str = "similarity"
    contains: tuple[str, ...] = ()
    before: datetime | None = None
    after: datetime | None = None
    confidence: tuple[tuple[str, float], ...] = ()
    limit: int = LIMIT_DEFAULT


@dataclass(frozen=True, slots=True)
class SpreadQuery:
    source: str
    max_hops: int = 4
    decay: float = 0.7
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class ConsolidateQuery:
    max_episodes: int = 5000


Statement = RecallQuery | SpreadQuery | ConsolidateQuery


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query returned: ``hits`` for RECALL, ``activations`` for SPREAD,
    ``patterns`` (consolidated semantic memories) for CONSOLIDATE."""

    operation: str
    statement: Any
    hits: List[Any] = field(default_factory=list)
    activations: dict[str, float] = field(default_factory=dict)
    patterns: List[Any] = field(default_factory=list)


def _suggest(word: str, choices: tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(word.upper(), [c.upper() for c in choices], n=1, cutoff=0.6)
    if not found:
        return None
    return next(c for c in choices if c.upper() == found[0])


def tokenize(text: str) -> List[Token]:
    tokens = []
    pos = 0
    n = len(text)
    while True:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos and m.lastgroup is None:
            break
        kind = m.lastgroup
        if kind is None:
            break
        start = m.start(kind)
        if kind == "bad" and m.group(kind) in "\"'[":
            what = "vector" if m.group(kind) == "[" else "string"
            closer = "]" if what == "vector" else m.group(kind)
            raise QueryError(f"Unterminated {what}", start, None, f"a {what} closed by {closer}", 'RECALL "coffee" LIMIT 5')
        if kind == "bad":
            raise QueryError(f"Unexpected character {m.group(kind)!r}", start, None,
                             "words, quoted strings, [vectors], numbers and > >= < <=", 'RECALL "coffee" LIMIT 5')
        tokens.append(Token(kind, m.group(kind), start))
        pos = m.end()
    if text[pos:].strip():
        raise QueryError("Unterminated string or vector", pos + len(text[pos:]) - len(text[pos:].lstrip()), None,
                         "strings closed by the same quote, vectors closed by ]", 'RECALL "coffee"')
    tokens.append(Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def keyword(self, token: Token, choices: tuple[str, ...]) -> str | None:
        if token.kind == "word" and token.text.upper() in choices:
            return token.text.upper()
        return None

    def expect_keyword(self, choices: tuple[str, ...], what: str, example: str) -> str:
        token = self.next()
        found = self.keyword(token, choices)
        if found is not None:
            return found
        if token.kind == "end":
            raise QueryError(f"Expected {what} but the query ended", token.position, None, " | ".join(choices), example)
        raise QueryError(f"Unknown {what} {token.text!r}", token.position, _suggest(token.text, choices), " | ".join(choices), example)

    def number(self, what: str, example: str, *, integer: bool = False, low: float | None = None, high: float | None = None) -> Any:
        token = self.next()
        if token.kind != "word" or not _NUMBER.match(token.text):
            shown = "the end of the query" if token.kind == "end" else repr(token.text)
            raise QueryError(f"Expected a number for {what}, found {shown}", token.position, None, f"a number for {what}", example)
        value: float | int = float(token.text)
        if integer:
            if not float(value).is_integer():
                raise QueryError(f"{what} must be a whole number, not {token.text}", token.position, None, "an integer", example)
            value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise QueryError(f"{what} {token.text} is out of range", token.position, None, f"{low} to {high}", example)
        return value

    def memory_id(self, what: str, example: str) -> str:
        token = self.next()
        if token.kind == "string":
            value = _unquote(token.text)
        elif token.kind == "word":
            value = token.text
        else:
            raise QueryError(f"Expected a memory id for {what}", token.position, None, "a memory id such as mem_7f3a", example)
        if not _MEMORY_ID.match(value):
            raise QueryError(f"{value!r} is not a valid memory id", token.position, None,
                             "letters, digits, '_', '.', ':' and '-', starting with a letter or digit", example)
        return value

    def time(self, example: str) -> datetime:
        token = self.next()
        raw = _unquote(token.text) if token.kind == "string" else token.text if token.kind == "word" else ""
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise QueryError(f"Expected an ISO 8601 time, found {token.text or 'the end of the query'!r}", token.position, None,
                             "a time like 2026-01-05T09:30:00Z", example) from None
        return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)

    def finish(self, clauses: tuple[str, ...], example: str) -> None:
        token = self.peek()
        if token.kind != "end":
            raise QueryError(f"Unexpected {token.text!r}", token.position, _suggest(token.text, clauses) if token.kind == "word" else None,
                             " | ".join(clauses) + " or the end of the query", example)

    # ------------------------------------------------------------------

    def statement(self) -> Statement:
        first = self.peek()
        if first.kind == "word" and first.text.upper() in REFUSED_OPERATIONS:
            raise QueryError(f"{first.text.upper()} is not supported: Engram has no generative model, so it could only "
                             "return a recall under another name", first.position, "RECALL", " | ".join(OPERATIONS),
                             'RECALL "what happens after the meeting" MODE hybrid')
        operation = self.expect_keyword(OPERATIONS, "operation", 'RECALL "coffee" LIMIT 5')
        if operation == "RECALL":
            return self.recall()
        if operation == "SPREAD":
            return self.spread()
        return self.consolidate()

    def recall(self) -> RecallQuery:
        example = 'RECALL "coffee" WHERE confidence > 0.5 LIMIT 5'
        token = self.next()
        text = vector = memory_id = None
        if token.kind == "string":
            text = _unquote(token.text)
            if not text.strip():
                raise QueryError("The recall text is empty", token.position, None, "a non-empty string", example)
        elif token.kind == "vector":
            vector = _vector(token)
        elif token.kind == "word" and token.text.upper() not in RECALL_CLAUSES:
            memory_id = token.text
            if not _MEMORY_ID.match(memory_id):
                raise QueryError(f"{memory_id!r} is not a valid memory id", token.position, None, "a memory id", example)
        else:
            raise QueryError("Expected a cue (\"text\", [vector] or a memory id) after RECALL", token.position, None,
                             '"text" | [0.1, 0.2, ...] | memory_id', example)
        mode = "similarity"
        contains: List[str] = []
        before = after = None
        confidence: List[tuple[str, float]] = []
        limit = LIMIT_DEFAULT
        seen: set[str] = set()
        while self.peek().kind != "end":
            clause_token = self.peek()
            clause = self.expect_keyword(RECALL_CLAUSES, "clause", example)
            if clause in seen:
                raise QueryError(f"{clause} given twice", clause_token.position, None, "each clause at most once", example)
            seen.add(clause)
            if clause == "MODE":
                mode_token = self.next()
                if mode_token.kind != "word" or mode_token.text.lower() not in MODES:
                    raise QueryError(f"Unknown mode {mode_token.text!r}", mode_token.position,
                                     _suggest(mode_token.text, MODES) if mode_token.kind == "word" else None, " | ".join(MODES), 'RECALL "coffee" MODE hybrid')
                mode = mode_token.text.lower()
            elif clause == "LIMIT":
                limit = self.number("LIMIT", 'RECALL "coffee" LIMIT 5', integer=True, low=1, high=LIMIT_MAX)
            else:
                while True:
                    field_token = self.next()
                    name = field_token.text.lower() if field_token.kind == "word" else ""
                    if name not in FIELDS:
                        raise QueryError(f"Unknown field {field_token.text!r}", field_token.position,
                                         _suggest(field_token.text, FIELDS) if field_token.kind == "word" else None, " | ".join(FIELDS), example)
                    if name == "content":
                        self.expect_keyword(("CONTAINS",), "operator for content", 'RECALL "x" WHERE content CONTAINS "cafe"')
                        string = self.next()
                        if string.kind != "string":
                            raise QueryError("Expected a quoted string after CONTAINS", string.position, None, '"text"', 'WHERE content CONTAINS "cafe"')
                        contains.append(_unquote(string.text))
                    elif name == "created":
                        which = self.expect_keyword(("BEFORE", "AFTER"), "operator for created", 'WHERE created AFTER 2026-01-01T00:00:00Z')
                        if which == "BEFORE":
                            before = self.time('WHERE created BEFORE 2026-01-01T00:00:00Z')
                        else:
                            after = self.time('WHERE created AFTER 2026-01-01T00:00:00Z')
                    else:
                        op = self.next()
                        if op.kind != "op" or op.text == "=":
                            raise QueryError(f"Expected > >= < or <= after confidence, found {op.text!r}", op.position, None, "> | >= | < | <=", "WHERE confidence > 0.5")
                        confidence.append((op.text, self.number("confidence", "WHERE confidence > 0.5", low=0.0, high=1.0)))
                    if self.keyword(self.peek(), ("AND",)) is None:
                        break
                    self.next()
        return RecallQuery(text, vector, memory_id, mode, tuple(contains), before, after, tuple(confidence), limit)

    def spread(self) -> SpreadQuery:
        example = "SPREAD FROM mem_1 MAX_HOPS 3 DECAY 0.7 THRESHOLD 0.05"
        self.expect_keyword(("FROM",), "keyword", example)
        source = self.memory_id("SPREAD FROM", example)
        values: dict[str, Any] = {}
        while self.peek().kind != "end":
            clause_token = self.peek()
            clause = self.expect_keyword(SPREAD_CLAUSES, "clause", example)
            if clause in values:
                raise QueryError(f"{clause} given twice", clause_token.position, None, "each clause at most once", example)
            if clause == "MAX_HOPS":
                values[clause] = self.number("MAX_HOPS", example, integer=True, low=0, high=16)
            elif clause == "DECAY":
                values[clause] = self.number("DECAY", example, low=0.0, high=10.0)
            else:
                values[clause] = self.number("THRESHOLD", example, low=0.0, high=1.0)
        return SpreadQuery(source, values.get("MAX_HOPS", 4), float(values.get("DECAY", 0.7)),
                           None if "THRESHOLD" not in values else float(values["THRESHOLD"]))

    def consolidate(self) -> ConsolidateQuery:
        example = "CONSOLIDATE MAX_EPISODES 5000"
        if self.peek().kind == "end":
            return ConsolidateQuery()
        self.expect_keyword(("MAX_EPISODES",), "clause", example)
        value = self.number("MAX_EPISODES", example, integer=True, low=1, high=1_000_000)
        self.finish((), example)
        return ConsolidateQuery(value)


def _unquote(text: str) -> str:
    return _ESCAPE.sub(r"\1", text[1:-1])


def _vector(token: Token) -> tuple[float, ...]:
    body = token.text[1:-1]
    if not body.strip():
        raise QueryError("The vector is empty", token.position, None, "[0.1, 0.2, ...] with the space's dimension", "RECALL [0.1, 0.2, 0.3]")
    parts = body.split(",")
    if len(parts) > VECTOR_LENGTH_MAX:
        raise QueryError(f"The vector has {len(parts)} numbers", token.position, None, f"at most {VECTOR_LENGTH_MAX}", "RECALL [0.1, 0.2]")
    values = []
    offset = token.position + 1
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise QueryError(f"{part.strip()!r} is not a number", offset + len(part) - len(part.lstrip()), None,
                             "numbers separated by commas", "RECALL [0.1, 0.2, 0.3]") from None
        offset += len(part) + 1
    return tuple(values)


def parse(text: str) -> Statement:
    """Parse one statement. Raises QueryError (a ValidationError) with position and suggestion."""
    if not isinstance(text, str):
        raise ValidationError("query", f"expected a string, got {type(text).__name__}", "a query string", 'RECALL "coffee" LIMIT 5')
    if len(text) > 1_000_000:
        raise ValidationError("query", f"{len(text)} characters is too long", "at most 1,000,000 characters", 'RECALL "coffee"')
    parser = _Parser(text)
    if parser.peek().kind == "end":
        raise QueryError("Empty query", 0, None, " | ".join(OPERATIONS), 'RECALL "coffee" LIMIT 5')
    return parser.statement()


def execute(space: Any, statement: Statement) -> QueryResult:
    """Run a parsed statement on a space. Raises what the space's methods raise."""
    if isinstance(statement, SpreadQuery):
        activations = space.spread([statement.source], max_hops=statement.max_hops, decay=statement.decay, threshold=statement.threshold)
        return QueryResult("SPREAD", statement, activations=activations)
    if isinstance(statement, ConsolidateQuery):
        space.consolidate(max_episodes=statement.max_episodes)
        return QueryResult("CONSOLIDATE", statement, patterns=space.patterns())
    return QueryResult("RECALL", statement, hits=_recall(space, statement))


_COMPARE = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


def _recall(space: Any, q: RecallQuery) -> List[Any]:
    args: dict[str, Any] = {"mode": q.mode, "after": q.after, "before": q.before}
    if q.text is not None:
        args["text"] = q.text
    elif q.vector is not None:
        args["embedding"] = list(q.vector)
    else:
        from engram.errors import UnknownIdError

        assert q.memory_id is not None
        memory = space.get(q.memory_id)
        if memory is None:
            raise UnknownIdError("RECALL", q.memory_id, space.id)
        if memory.embedding is not None:
            args["embedding"] = memory.embedding
        else:
            args["text"] = memory.content
    post = bool(q.contains or q.confidence)
    if not post:
        return space.recall(k=q.limit, **args)  # type: ignore[no-any-return]
    needles = [c.casefold() for c in q.contains]
    k = min(LIMIT_MAX, max(4 * q.limit, 64))
    while True:
        hits = space.recall(k=k, **args)
        kept = [h for h in hits
                if all(n in h.memory.content.casefold() for n in needles)
                and all(_COMPARE[op](h.confidence, value) for op, value in q.confidence)]
        if len(kept) >= q.limit or len(hits) < k or k >= LIMIT_MAX:
            return kept[: q.limit]
        k = min(LIMIT_MAX, 4 * k)
