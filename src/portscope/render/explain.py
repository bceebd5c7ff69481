"""Explanations, "what you are looking at" blocks and quizzes: text lines and JSON.

Text is wrapped to the terminal's width (80 columns when not a terminal); every value
read from the host (process names, command lines, addresses) goes through ``safe``.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from portscope.render import safe

if TYPE_CHECKING:
    from portscope.explain import Explanation, Question

SCHEMA = "portscope.explain/1"
QUIZ_SCHEMA = "portscope.quiz/1"
_WIDTH = 80


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width=max(width, 40), initial_indent=indent, subsequent_indent=indent
    ) or [indent]


def explanation_lines(e: Explanation, width: int | None) -> list[str]:
    """The explanation as text lines: title, paragraphs, facts, settings, source."""
    width = width or _WIDTH
    lines = [safe(e.title), ""]
    for paragraph in e.text.split("\n\n"):
        lines += _wrap(safe(paragraph), width)
        lines.append("")
    if e.facts:
        lines.append("On this host now:")
        label_width = min(max(len(safe(k)) for k, _ in e.facts), 32)
        for key, value in e.facts:
            head = f"  {safe(key):<{label_width}}  "
            body = _wrap(safe(value), width - len(head))
            lines.append(head + body[0])
            lines += [" " * len(head) + more for more in body[1:]]
        lines.append("")
    if e.settings:
        lines.append("Kernel settings here:")
        for s in e.settings:
            unit = f" {s.unit}" if s.unit and s.value.isdigit() else ""
            if s.constant:
                tail = " (compile-time constant)"
            elif s.default and s.default != s.value:
                tail = f" (kernel default {s.default}: changed here)"
            elif s.default:
                tail = " (the kernel default)"
            else:
                tail = ""
            lines.append(f"  {s.name} = {s.value}{unit}{tail}")
        lines.append("")
    for note in e.notes:
        lines += _wrap(f"note: {safe(note)}", width)
    lines += _wrap(f"Source: {e.source}", width)
    if e.see:
        lines += _wrap("See: " + "; ".join(e.see), width)
    for kind in e.also:
        lines += _wrap(
            f"'{e.subject}' is also a {kind}: portscope explain --kind {kind} {e.subject}",
            width,
        )
    return lines


def explanation_json(e: Explanation) -> dict[str, Any]:
    """The explanation as a JSON document (schema ``portscope.explain/1``); exact values."""
    return {
        "schema": SCHEMA,
        "kind": e.kind,
        "subject": e.subject,
        "title": e.title,
        "text": e.text,
        "source": e.source,
        "facts": [{"label": k, "value": v} for k, v in e.facts],
        "settings": [
            {
                "name": s.name,
                "value": s.value,
                "default": s.default or None,
                "unit": s.unit or None,
                "constant": s.constant,
            }
            for s in e.settings
        ],
        "see": list(e.see),
        "also": list(e.also),
        "notes": list(e.notes),
    }


def about_lines(lines: list[tuple[str, str]], width: int | None) -> list[str]:
    """The "what you are looking at" block after a table; empty when nothing to say."""
    if not lines:
        return []
    width = width or _WIDTH
    name_width = min(max(len(n) for n, _ in lines), 18)
    out = ["", "What you are looking at:"]
    for name, sentence in lines:
        head = f"  {name:<{name_width}}  "
        body = _wrap(sentence, width - len(head))
        out.append(head + body[0])
        out += [" " * len(head) + more for more in body[1:]]
    out.append("  (portscope explain WORD says more about any of them)")
    return out


def question_lines(number: int, q: Question, width: int | None, *, answer: bool) -> list[str]:
    """One question, its numbered choices and, with ``answer``, the answer and why."""
    width = width or _WIDTH
    lines = _wrap(f"{number}. {safe(q.text)}", width)
    lines += [f"   {i + 1}) {safe(c)}" for i, c in enumerate(q.choices)]
    if answer:
        lines += _wrap(f"answer: {q.answer + 1}) {safe(q.choices[q.answer])}", width, "   ")
        lines += _wrap(safe(q.explanation), width, "   ")
    return lines


def quiz_json(questions: list[Question], seed: int | None) -> dict[str, Any]:
    """Questions with answers (schema ``portscope.quiz/1``), for teaching material."""
    return {
        "schema": QUIZ_SCHEMA,
        "seed": seed,
        "questions": [
            {
                "kind": q.kind,
                "question": q.text,
                "choices": list(q.choices),
                "answer": q.answer,
                "explanation": q.explanation,
            }
            for q in questions
        ],
    }
