"""The read-only dashboard at /ui: server-rendered pages (Jinja2 templates in
`templates/`), a few KB of our own JavaScript and CSS in `static/`, nothing fetched from
another origin. `pages.ui_router` is mounted by `reconciler.api.app.create_app`;
`shapes` computes what the templates show.
"""

from reconciler.api.ui.pages import ui_router

__all__ = ["ui_router"]
