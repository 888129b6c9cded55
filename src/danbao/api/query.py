"""Query strings: a route takes the parameters it declares, each once, and nothing else.

FastAPI ignores a parameter a route does not declare, and of one given twice it keeps the
last. A client's typo (`limt=10`) would then quietly be the default page, and of
`limit=1&limit=500` a proxy might check one value while we used the other. Both are
refused as the client's to fix, before the route runs, with the parameter named.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request

from danbao.api.problems import ApiCode
from danbao.errors import DanbaoError

# How much of an offending name the problem repeats back.
NAME_SHOWN_CHARS_MAX = 64


def declared_parameters(route: APIRoute) -> frozenset[str]:
    """The names a route reads from its query string (its own and its dependencies')."""
    names: set[str] = set()
    dependants = [route.dependant]
    while dependants:  # a tree as deep as the route's dependencies: a handful at most
        dependant = dependants.pop()
        names.update(field.alias for field in dependant.query_params)
        dependants.extend(dependant.dependencies)
    return frozenset(names)


def check_query(request: Request, declared: frozenset[str]) -> None:
    """Raise unless every query parameter is declared and none is given twice."""
    if not request.scope.get("query_string"):
        return  # most requests: nothing to parse
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        shown = name[:NAME_SHOWN_CHARS_MAX]
        if name not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise DanbaoError(f"unknown query parameter {shown!r} (this route takes: {allowed})", field=shown, code=ApiCode.parameter_unknown)
        if name in seen:
            raise DanbaoError(f"query parameter {shown!r} is given more than once", field=shown, code=ApiCode.parameter_repeated)
        seen.add(name)  # bounded: only declared names get here
