"""The exception map resolves each type once, and still reads every instance."""

from __future__ import annotations

import http

from starlette.exceptions import HTTPException

from proxygate.errors import exceptions
from proxygate.errors.exceptions import ExceptionMap, MappedError


class AppError(Exception):
    pass


class NotYours(AppError):
    pass


class Deeper(NotYours):
    pass


class OwnHTTPError(HTTPException):
    pass


def test_a_subclass_seen_after_its_base_still_finds_its_own_registration() -> None:
    mapped = ExceptionMap({AppError: 400, NotYours: 403})
    assert mapped.lookup(AppError()) == MappedError(400)
    assert mapped.lookup(Deeper()) == MappedError(403)
    assert mapped.lookup(NotYours()) == MappedError(403)
    assert mapped.lookup(AppError()) == MappedError(400)


def test_an_unregistered_type_stays_unmapped_when_seen_again() -> None:
    mapped = ExceptionMap({AppError: 400})
    assert mapped.lookup(ValueError()) is None
    assert mapped.lookup(ValueError()) is None


def test_each_map_answers_from_its_own_registrations() -> None:
    assert ExceptionMap({AppError: 400}).lookup(Deeper()) == MappedError(400)
    assert ExceptionMap({NotYours: 409}).lookup(Deeper()) == MappedError(409)
    assert ExceptionMap().lookup(Deeper()) is None


def test_every_instance_of_a_type_seen_before_gets_its_own_status_detail_and_headers() -> None:
    mapped = ExceptionMap()
    assert mapped.lookup(HTTPException(404)) == MappedError(404)
    assert mapped.lookup(HTTPException(409, detail="Taken.")) == MappedError(409, None, "Taken.")
    assert mapped.lookup(HTTPException(429, headers={"Retry-After": "3"})) == MappedError(
        429, None, None, ((b"retry-after", b"3"),))
    assert mapped.lookup(HTTPException(404, detail="Not Found")) == MappedError(404)
    assert mapped.lookup(HTTPException(503, detail="secret")) == MappedError(503)


def test_a_registration_beats_what_a_framework_type_seen_before_says() -> None:
    mapped = ExceptionMap({OwnHTTPError: 418})
    assert mapped.lookup(HTTPException(404)) == MappedError(404)
    assert mapped.lookup(OwnHTTPError(404)) == MappedError(418)
    assert mapped.lookup(HTTPException(404)) == MappedError(404)


def test_a_status_given_as_an_enum_is_still_believed() -> None:
    found = ExceptionMap().lookup(HTTPException(http.HTTPStatus.NOT_FOUND))
    assert found is not None and found.status == 404


def test_a_bool_status_is_still_not_believed() -> None:
    exc = HTTPException(404)
    exc.status_code = True
    assert ExceptionMap().lookup(exc) is None


def test_a_detail_that_is_no_plain_value_never_becomes_details() -> None:
    found = ExceptionMap().lookup(HTTPException(400, detail=object()))  # type: ignore[arg-type]
    assert found == MappedError(400)


def test_types_made_on_the_fly_do_not_grow_the_memory_without_bound() -> None:
    mapped = ExceptionMap({AppError: 400})
    for number in range(exceptions._TYPES_REMEMBERED * 3):
        kind = type(f"Made{number}", (AppError,), {})
        assert mapped.lookup(kind()) == MappedError(400)
    assert len(mapped._by_type) <= exceptions._TYPES_REMEMBERED
