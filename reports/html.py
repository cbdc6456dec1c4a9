"""HTML rendering: an autoescaping Jinja environment over the package's templates."""

from __future__ import annotations

import jinja2


def html_environment() -> jinja2.Environment:
    """Jinja environment for ``*.html.j2``: every placed value is HTML-escaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
