"""The OpenAPI 3 description of the HTTP API that :mod:`.web` serves at ``/openapi.json``.

It describes what ``web`` really answers: every path, method, status code and body shape,
the error bodies included (ours, and CherryPy's for 404, 411 and 413). ``tests/test_openapi.py``
holds the service to it with schemathesis over real HTTP, so a change to either shows up there.

Binary-mode CloudEvents (attributes in ``ce-*`` headers) are accepted too; they are explained in
the text of ``POST /receive`` rather than as header parameters, because which headers are needed
depends on each other in ways OpenAPI cannot state.

``document`` assembles it from ``paths`` (every operation and its answers), ``schemas`` (the
components' schemas) and ``responses`` (the pieces every answer shares).
"""

from .document import OPENAPI_VERSION, description

__all__ = ["OPENAPI_VERSION", "description"]
