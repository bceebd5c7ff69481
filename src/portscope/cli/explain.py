"""``portscope explain THING`` and ``portscope explain --quiz``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from portscope.cli._base import Env, ExitStatus, Parser, UsageError

HELP = "what a port, socket, state, error, scan reason or term means, on this host's data"


def configure(parser: Parser) -> None:
    parser.add_argument(
        "thing",
        nargs="*",
        metavar="THING",
        help="a port (8080, 53/udp), ADDRESS:PORT or a connection "
        "(10.0.0.5:51234-10.0.0.9:443), a TCP state (TIME-WAIT), a scan state or reason "
        "(open|filtered, admin-prohibited), an error (EADDRINUSE, 'Connection refused'), "
        "a why verdict, an audit rule, or a term (5-tuple, backlog, SO_REUSEPORT)",
    )
    parser.add_argument(
        "--kind",
        choices=("state", "port-state", "error", "reason", "term", "verdict", "finding"),
        help="take THING as this kind when it names several (open: port-state or verdict)",
    )
    parser.add_argument(
        "--no-live",
        action="store_true",
        help="the words and kernel settings only: do not read this host's sockets",
    )
    quiz = parser.add_argument_group("quiz")
    quiz.add_argument(
        "--quiz",
        action="store_true",
        help="test your knowledge: questions drawn from this host's sockets and the registry",
    )
    quiz.add_argument(
        "--count",
        type=int,
        default=5,
        metavar="N",
        help="with --quiz: how many questions, 1-50 (default 5)",
    )
    quiz.add_argument(
        "--seed", type=int, metavar="S", help="with --quiz: the same seed gives the same quiz"
    )
    quiz.add_argument(
        "--answers",
        action="store_true",
        help="with --quiz: print questions with answers instead of asking (the default "
        "when stdin is not a terminal)",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope import explain as ex
    from portscope.render import write_json
    from portscope.render.explain import explanation_json, explanation_lines

    if args.quiz:
        if args.thing:
            raise UsageError("--quiz takes no THING")
        return _quiz(args, env)
    for name in ("count", "seed", "answers"):
        if name == "count" and args.count == 5:
            continue
        if getattr(args, name) not in (None, False):
            raise UsageError(f"--{name} goes with --quiz")
    if not args.thing:
        raise UsageError(
            "explain what? a port, ADDRESS:PORT, a TCP state, an error, a scan state or a "
            "term (e.g. 'portscope explain TIME-WAIT')"
        )
    found = ex.explain(" ".join(args.thing), live=not args.no_live, kind=args.kind)
    if args.json:
        write_json(explanation_json(found), env.stdout)
    else:
        env.show("\n".join(explanation_lines(found, env.columns())))
    return ExitStatus.OK


def _quiz(args: argparse.Namespace, env: Env) -> int:
    from portscope import explain as ex
    from portscope.render import safe, write_json
    from portscope.render.explain import question_lines, quiz_json

    questions = ex.quiz(args.count, args.seed)
    if args.json:
        write_json(quiz_json(questions, args.seed), env.stdout)
        return ExitStatus.OK
    width = env.columns()
    stdin = sys.stdin
    interactive = not args.answers and stdin is not None and stdin.isatty()
    if not interactive:
        for n, q in enumerate(questions, 1):
            env.show("\n".join(question_lines(n, q, width, answer=True)) + "\n")
        return ExitStatus.OK
    right = 0
    for n, q in enumerate(questions, 1):
        env.show("\n".join(question_lines(n, q, width, answer=False)))
        env.stdout.write(f"   your answer (1-{len(q.choices)}): ")
        env.stdout.flush()
        reply = stdin.readline()
        if not reply:
            break
        chosen = reply.strip()
        ok = chosen.isascii() and chosen.isdigit() and int(chosen) - 1 == q.answer
        right += ok
        verdict = "right" if ok else f"no: {q.answer + 1}) {safe(q.choices[q.answer])}"
        env.show(f"   {verdict}. {safe(q.explanation)}\n")
    env.show(f"{right} of {len(questions)} right.")
    return ExitStatus.OK


def add_explain_option(parser: Parser) -> None:
    """``--explain``: after the table, what the states, scopes and reasons in it mean."""
    parser.add_argument(
        "--explain",
        action="store_true",
        help="after the table, say what the states, scopes and reasons in it mean",
    )


def show_about(
    env: Env,
    args: argparse.Namespace,
    *,
    states: Iterable[str] = (),
    port_states: Iterable[str] = (),
    reasons: Iterable[str] = (),
    scopes: Iterable[str] = (),
    terms: Iterable[str] = (),
) -> None:
    """Write the "what you are looking at" block when ``--explain`` was given (text only:
    JSON documents carry no prose)."""
    if not getattr(args, "explain", False) or args.json:
        return
    from portscope.explain import about
    from portscope.render.explain import about_lines

    lines = about(
        states=sorted(set(states)),
        port_states=sorted(set(port_states)),
        reasons=sorted(set(reasons)),
        scopes=sorted(set(scopes)),
        terms=terms,
    )
    if lines:
        env.show("\n".join(about_lines(lines, env.columns())))
