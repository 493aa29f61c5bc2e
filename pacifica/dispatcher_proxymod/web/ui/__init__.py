"""The dashboard at ``/ui/``: the runs list and one page per run, HTML drawn on the server.

``views`` turns store rows into what a page shows, ``templates/`` (Jinja2, autoescaped) draws it,
``security`` holds the Content-Security-Policy and the CSRF check of the forms, ``resource`` is
the CherryPy object mounted at ``/ui``. Works with JavaScript off; ``static/ui.js`` only refreshes
a page while a run on it is waiting or running.
"""
