"""Running a typer app so that a usage error is one line on stderr and exit code 2.

Click's own report of a bad option (a usage line, a hint and a framed box) becomes
``error: <what is wrong> (see `<command> --help`)``; everything else behaves as typer does.
Shared by the ``runner``, ``analyze`` and ``report`` console scripts.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn


def run_app(app: Any, args: list[str] | None = None) -> NoReturn:
    """Run ``app`` (a ``typer.Typer``) on ``args`` (default ``sys.argv[1:]``) and exit."""
    from typer import Abort

    try:  # recent typer carries its own copy of click
        from typer import _click as click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover - older typer on real click
        import click
        from click import exceptions as cx

    try:
        code = app(args=args, standalone_mode=False)
    except cx.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
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
    sys.exit(code if isinstance(code, int) else 0)
