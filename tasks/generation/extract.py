"""Recover the program from an LLM's raw answer, and say how it was found.

Rules, in order (the raw text itself is always kept by the caller):
1. empty or whitespace only -> `empty`.
2. Fenced blocks (``` or ~~~, a missing closing fence counts as closed at the end, as in an answer cut
   by max_tokens). Blocks tagged python/py/python3/py3 or untagged are candidates; shell, json, text and
   other tagged blocks are ignored. One candidate -> `single_block`. Several -> `multiple_blocks`, and
   the choice is, first match wins:
     a. the longest candidate that parses, writes audio (wav/soundfile/wave calls) and is complete:
        it reads no name it neither binds nor imports;
     b. all candidates joined in order, if that parses and writes audio (models that split imports,
        functions and `main` into separate blocks);
     c. the longest candidate that parses and writes audio; d. the longest that parses;
     e. the longest candidate (recorded as not parsing).
   Ties go to the later block: "here is the corrected version" comes last.
3. No fence: the whole answer parses as Python with at least one real statement -> `unfenced`.
4. No fence: the longest run of lines that starts like code and parses -> `prose_with_code`.
5. A refusal phrase with no code -> `refusal`; anything else -> `no_code`.
`<think>...</think>` sections of reasoning models are dropped before all this.
"""

from __future__ import annotations

import ast
import builtins
import re
import threading
from dataclasses import dataclass

from audioprobe.schema import ExtractionStatus

FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([^\n`]*)$", re.MULTILINE)
PY_TAGS = {"", "python", "py", "python3", "py3", "ipython", "python3.11"}
THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL | re.IGNORECASE)
WRITES_AUDIO = re.compile(
    r"\.wav\b|wavfile\.write|sf\.write|soundfile|\.export\(|wave\.open|torchaudio\.save|librosa\.output",
    re.IGNORECASE,
)
CODE_START = re.compile(
    r"^(import \w|from [\w.]+ import |def \w|class \w|@\w|#!|if __name__|[A-Za-z_][\w.]*\s*(\[.*\])?\s*=[^=])"
)
REFUSAL = re.compile(
    r"\b(I'?m sorry|I am sorry|I can(?:'|no)t (?:help|assist|provide|do|write|create|comply)|"
    r"I cannot (?:help|assist|provide|do|write|create|comply)|I won'?t be able|as an AI\b|"
    r"I'?m (?:not able|unable) to|I am (?:not able|unable) to|I must decline)",
    re.IGNORECASE,
)


_ast_lock = threading.Lock()


def parse(code: str) -> ast.Module:
    """`ast.parse`, one thread at a time: CPython 3.11 keeps the AST constructor's recursion depth in
    interpreter-wide state, so parses in several threads at once can fail with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython#106905). Four answers of a batched `ask` hit
    it in a paper-size run and were recorded as the model's llm_error."""
    with _ast_lock:
        return ast.parse(code)


@dataclass(frozen=True)
class Extraction:
    status: ExtractionStatus
    code: str
    note: str = ""


def _parses(code: str) -> bool:
    try:
        parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _has_statement(code: str) -> bool:
    """True when the code does something: not only bare names or strings ("Sorry." parses as a name)."""
    try:
        tree = parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.Name)))
        for node in tree.body
    )


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of every fenced block; an unclosed last fence runs to the end of the text."""
    blocks: list[tuple[str, str]] = []
    marks = list(FENCE.finditer(text))
    i = 0
    while i < len(marks):
        opening = marks[i]
        tag = opening.group(2).strip().lower().split()[0] if opening.group(2).strip() else ""
        fence = opening.group(1)
        close = next(
            (
                j
                for j in range(i + 1, len(marks))
                if marks[j].group(1)[0] == fence[0]
                and len(marks[j].group(1)) >= len(fence)
                and not marks[j].group(2).strip()
            ),
            None,
        )
        start = opening.end() + 1
        end = marks[close].start() if close is not None else len(text)
        blocks.append((tag, text[start:end].rstrip() + "\n" if text[start:end].strip() else ""))
        i = (close + 1) if close is not None else len(marks)
    return blocks


def undefined_names(code: str) -> set[str]:
    """Names a block reads but never binds nor imports: a sign it is a fragment of a larger program."""
    try:
        tree = parse(code)
    except (SyntaxError, ValueError):
        return set()
    bound, loaded = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return set()  # a star import may bind anything
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return loaded - bound


def _choose(candidates: list[str]) -> tuple[str, str]:
    def longest(codes: list[tuple[int, str]]) -> tuple[int, str]:
        return max(codes, key=lambda ic: (len(ic[1].strip()), ic[0]))

    n = len(candidates)
    indexed = list(enumerate(candidates))
    parsing = [(i, c) for i, c in indexed if _parses(c)]
    audio = [(i, c) for i, c in parsing if WRITES_AUDIO.search(c)]
    whole = [(i, c) for i, c in audio if not undefined_names(c)]
    if whole:
        i, c = longest(whole)
        return c, f"chose block {i + 1} of {n}: longest complete one that parses and writes audio"
    joined = "\n".join(c.rstrip() for c in candidates) + "\n"
    if _parses(joined) and WRITES_AUDIO.search(joined):
        return joined, f"joined all {n} blocks: no single one is a complete program that writes audio"
    if audio:
        i, c = longest(audio)
        return c, f"chose block {i + 1} of {n}: longest that parses and writes audio (uses undefined names)"
    if parsing:
        i, c = longest(parsing)
        return c, f"chose block {i + 1} of {n}: longest that parses (none writes audio)"
    i, c = longest(indexed)
    return c, f"chose block {i + 1} of {n}: longest; none parses"


def _code_run(text: str) -> str:
    """The longest span of lines that starts like code and parses as Python with a real statement."""
    lines = text.splitlines()
    best, best_span = "", (0, 0)
    for s in [i for i, line in enumerate(lines) if CODE_START.match(line)][:60]:
        if best_span[0] <= s < best_span[1]:
            continue
        e = len(lines)
        while e - s > len(best.splitlines()):
            chunk = "\n".join(lines[s:e]).rstrip()
            try:
                parse(chunk)
            except SyntaxError as err:
                # Cut just before the offending line: the prose after the code is usually where it fails.
                bad = (err.lineno or (e - s)) - 1
                e = s + bad if 0 < bad < e - s else e - 1
                continue
            except ValueError:
                e -= 1
                continue
            if _has_statement(chunk):
                best, best_span = chunk + "\n", (s, e)
            break
    return best


def extract(raw_text: str | None) -> Extraction:
    text = THINK.sub("", raw_text or "").strip()
    if not text:
        return Extraction("empty", "", "the answer is empty")

    blocks = fenced_blocks(text)
    if blocks:
        ignored = [t for t, _ in blocks if t not in PY_TAGS]
        candidates = [b for t, b in blocks if t in PY_TAGS and b.strip()]
        skipped = f"; ignored {len(ignored)} non-python block(s) ({', '.join(ignored)})" if ignored else ""
        if len(candidates) == 1:
            note = "one python block" + ("" if _parses(candidates[0]) else " (does not parse)")
            return Extraction("single_block", candidates[0], note + skipped)
        if candidates:
            code, note = _choose(candidates)
            return Extraction("multiple_blocks", code, note + skipped)

    if not blocks and _parses(text) and _has_statement(text):
        return Extraction("unfenced", text + "\n", "the whole answer parses as Python")
    run = _code_run(text) if not blocks else ""
    if run and len(run.splitlines()) >= 2:
        return Extraction("prose_with_code", run, f"{len(run.splitlines())} lines recovered from prose")
    if REFUSAL.search(text):
        return Extraction("refusal", "", "the model declined")
    return Extraction("no_code", "", "no fenced python block and nothing that parses as Python")
