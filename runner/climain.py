"""Running a typer app so that a usage error is one line on stderr and exit code 2.

Click's own report of a bad option (a usage line, a hint and a framed box) becomes
``error: <what is wrong> (see `<command> --help`)``; everything else behaves as typer does.
Shared by the ``runner``, ``analyze`` and ``report`` console scripts, like
:class:`QuickHelpGroup`, the group class of their typer apps.
"""

from __future__ import annotations

import re
import sys
from typing import Any, NoReturn

from typer.core import TyperGroup


class QuickHelpGroup(TyperGroup):
    """A Typer group whose own ``--help`` flag defaults to False instead of None.

    typer 0.29 coerces a flag's value through a pydantic TypeAdapter unless it is already a bool,
    so ``analyze anova --help`` (the group's flag unset, None) imported pydantic (~0.08 s) just to
    read "not given". Use it as ``typer.Typer(cls=QuickHelpGroup)``.
    """

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


#: Characters that must not reach a terminal raw from data: C0 controls but newline and tab, DEL,
#: C1 controls (ESC and CSI start escape sequences that move the cursor, rewrite the screen or set
#: the window title; OSC 8 makes links) and the bidirectional overrides and isolates that make
#: text read differently from what it is ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every character of :data:`_UNSAFE` shown as a visible escape (``\\x1b``,
    ``\\u202e``) instead of acting on the terminal."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def run_app(app: Any, args: list[str] | None = None) -> NoReturn:
    """Run ``app`` (a ``typer.Typer``) on ``args`` (default ``sys.argv[1:]``) and exit."""
    from typer import Abort

    try:  # recent typer carries its own copy of click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover - older typer on real click
        from click import exceptions as cx

    try:
        code = app(args=args, standalone_mode=False)
    except cx.NoArgsIsHelpError:  # typer has printed the help already
        sys.exit(2)
    except cx.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"error: {message}{where}\n")
        sys.exit(2)
    except cx.ClickException as exc:
        sys.stderr.write(f"error: {' '.join(exc.format_message().split())}\n")
        sys.exit(exc.exit_code)
    except Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except BrokenPipeError:  # `analyze ... | head`
        sys.stderr.close()
        sys.exit(0)
    _freeze_heap()
    sys.exit(code if isinstance(code, int) else 0)


def _freeze_heap() -> None:
    """Move every live object to the collector's permanent generation before exit.

    The interpreter's shutdown collections otherwise walk every object the imports of numpy,
    scipy and duckdb left behind (py-spy: 3-11% of an ``analyze`` process at 10M trials); the
    atexit handlers and finalisers still run (unlike ``os._exit``)."""
    import gc

    gc.freeze()
