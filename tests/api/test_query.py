"""A route's query string holds only the parameters it declares, named as clients send them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.routing import APIRoute

from danbao.api.query import declared_parameters


def since_filter(since: int = 0) -> int:
    return since


def endpoint(page_size: Annotated[int, Query(alias="page-size")] = 10, since: int = Depends(since_filter)) -> dict[str, int]:
    return {"page_size": page_size, "since": since}


def test_a_route_declares_its_parameters_by_the_names_clients_send_and_its_dependencies_too() -> None:
    route = APIRoute("/things", endpoint)
    # The alias, not the Python name; and the dependency's own parameter.
    assert declared_parameters(route) == frozenset({"page-size", "since"})
