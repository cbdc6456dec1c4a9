"""HTML rendering: an autoescaping Jinja environment over the package's templates."""

from __future__ import annotations

import jinja2
from markupsafe import Markup, escape

from reports.blocks import render_commands


def commands(text: str) -> Markup:
    """``text`` escaped, each marked command in ``<code class="cmd">``, its options (words
    starting with ``-``) in ``<span class="opt">``, which never breaks at a hyphen (a browser
    may break after one: ``-`` then ``-resume`` on the next line)."""

    def word(token: str) -> str:
        if token.startswith("-"):
            return Markup('<span class="opt">{}</span>').format(token)
        return escape(token)

    return Markup(
        render_commands(
            text,
            plain=escape,
            word=word,
            command=lambda inner: Markup('<code class="cmd">{}</code>').format(Markup(inner)),
        )
    )


def html_environment() -> jinja2.Environment:
    """Jinja environment for ``*.html.j2``: every placed value is HTML-escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["commands"] = commands
    return env
