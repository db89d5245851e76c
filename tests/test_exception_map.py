"""The exception map (each type resolved once, every instance still read), exceptions that
carry their own status, debug, and redacted validation errors."""

from __future__ import annotations

import http
import json
import logging
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from proxygate import asgi, wsgi
from proxygate.config import Config, ConfigError
from proxygate.errors import exceptions
from proxygate.errors.exceptions import ExceptionMap, MappedError
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.validation import redact_validation_errors
from support.conformance import Request, call_asgi, call_wsgi

SECRET = "hunter2-do-not-echo"


class AppError(Exception):
    pass


class NotYours(AppError):
    pass


class Deeper(NotYours):
    pass


def _handler(**options: Any) -> ErrorHandler:
    return ErrorHandler(Config(users={}, **options))


def _head() -> HeadFromPairs:
    return HeadFromPairs("GET", "/thing", [(b"x-request-id", b"rid-1")], "127.0.0.1")


def _error(handler: ErrorHandler, exc: BaseException) -> tuple[int, dict[str, Any], list[Any]]:
    response = handler.exception_response(_head(), exc)
    return response.status, json.loads(response.body)["error"], response.headers


# -- registrations ------------------------------------------------------------------------


def test_registered_class_maps_to_status_message_and_details() -> None:
    handler = _handler(exception_map={AppError: (409, "Already there", {"id": 7})})
    status, error, _ = _error(handler, AppError(SECRET))
    assert status == 409
    assert error == {"code": 409, "message": "Already there", "details": {"id": 7},
                     "request_id": "rid-1"}


def test_subclass_matches_its_registered_base() -> None:
    handler = _handler(exception_map={AppError: 403})
    assert _error(handler, Deeper())[0] == 403


def test_most_specific_registration_wins() -> None:
    handler = _handler(exception_map={AppError: 400, NotYours: 403})
    assert _error(handler, Deeper())[0] == 403
    assert _error(handler, AppError())[0] == 400


def test_dotted_name_registers_a_class() -> None:
    handler = _handler(exception_map={"test_exception_map.NotYours": 403})
    assert _error(handler, Deeper())[0] == 403


def test_mapping_spec_form_is_accepted() -> None:
    mapped = ExceptionMap({AppError: {"status": 422, "message": "Bad", "details": ["x"]}})
    assert mapped.lookup(AppError()) == MappedError(422, "Bad", ["x"])


def test_exception_text_never_reaches_the_body_of_a_mapped_error() -> None:
    handler = _handler(exception_map={AppError: 400})
    response = handler.exception_response(_head(), AppError(SECRET))
    assert SECRET.encode() not in response.body


@pytest.mark.parametrize("mapping", [
    {"nodots": 400},
    {"no.such.module.Error": 400},
    {"json.dumps": 400},
    {int: 400},
    {AppError: 200},
    {AppError: 600},
    {AppError: True},
    {AppError: "400"},
    {AppError: {"status": 400, "stack": True}},
    {AppError: (400, 123)},
])
def test_bad_exception_map_fails_at_construction(mapping: dict[Any, Any]) -> None:
    with pytest.raises(ConfigError, match="exception"):
        _handler(exception_map=mapping)


def test_builtin_errors_are_not_mapped_by_default() -> None:
    handler = _handler()
    for exc in (PermissionError("no"), TimeoutError(), KeyError("k"), ValueError("v")):
        assert _error(handler, exc)[0] == 500


def test_user_choice_maps_permission_and_timeout_errors() -> None:
    handler = _handler(exception_map={PermissionError: 403, TimeoutError: 504})
    assert _error(handler, PermissionError())[0] == 403
    assert _error(handler, TimeoutError())[0] == 504


def test_mapped_5xx_is_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    handler = _handler(exception_map={TimeoutError: (504, None, "The upstream took too long.")})
    status, error, _ = _error(handler, TimeoutError(SECRET))
    assert (status, error["details"]) == (504, "The upstream took too long.")
    assert [r.levelname for r in caplog.records if r.name == "proxygate.errors"] == ["ERROR"]


def test_mapped_4xx_is_not_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    _error(_handler(exception_map={AppError: 404}), AppError())
    assert all(r.levelno < logging.WARNING for r in caplog.records)


def test_log_false_renders_without_a_record(caplog: pytest.LogCaptureFixture) -> None:
    response = _handler().exception_response(_head(), RuntimeError(SECRET), log=False)
    assert response.status == 500
    assert [r for r in caplog.records if r.name == "proxygate.errors"] == []


# -- debug ----------------------------------------------------------------------------------


def test_500_body_has_no_type_or_message_by_default() -> None:
    response = _handler().exception_response(_head(), RuntimeError(SECRET))
    assert SECRET.encode() not in response.body
    assert b"RuntimeError" not in response.body


def test_proxygate_debug_adds_type_and_message_to_500() -> None:
    _, error, _ = _error(_handler(debug=True), RuntimeError(SECRET))
    assert error["details"] == {"exception": "RuntimeError", "message": SECRET}


def test_starlette_debug_mode_does_not_turn_on_proxygate_debug() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def boom(request: Any) -> Any:
        raise RuntimeError(SECRET)

    app = Starlette(debug=True, routes=[Route("/boom", boom)])
    for accept in ("text/html", "*/*"):
        reply = call_asgi(asgi.ErrorEnvelopeMiddleware(app, users={}),
                          Request("GET", "/boom", (("Accept", accept),)))
        assert reply.status == 500
        assert SECRET.encode() not in reply.body
        assert b"Traceback" not in reply.body


def test_flask_debug_mode_does_not_turn_on_proxygate_debug() -> None:
    from flask import Flask

    app = Flask(__name__)
    app.debug = True

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError(SECRET)

    reply = call_wsgi(wsgi.ErrorEnvelopeMiddleware(app.wsgi_app, users={}),
                      Request("GET", "/boom"))
    assert reply.status == 500
    assert SECRET.encode() not in reply.body


# -- exceptions that carry their status -----------------------------------------------------


def test_starlette_http_exception_maps_to_its_status_and_detail() -> None:
    from starlette.exceptions import HTTPException

    exc = HTTPException(404, detail="No such order.", headers={"X-Hint": "orders"})
    status, error, headers = _error(_handler(), exc)
    assert (status, error["details"]) == (404, "No such order.")
    assert (b"x-hint", b"orders") in headers


def test_fastapi_http_exception_subclass_maps_like_starlettes() -> None:
    from fastapi import HTTPException

    status, error, headers = _error(
        _handler(), HTTPException(401, "Log in first.", headers={"WWW-Authenticate": "Bearer"}))
    assert (status, error["details"]) == (401, "Log in first.")
    assert (b"www-authenticate", b"Bearer") in headers


def test_starlette_http_exception_default_detail_gets_default_details() -> None:
    from starlette.exceptions import HTTPException

    _, error, _ = _error(_handler(), HTTPException(404))
    assert error["details"] == "Nothing was found at this address."


def test_starlette_5xx_detail_is_never_shown() -> None:
    from starlette.exceptions import HTTPException

    status, error, _ = _error(_handler(), HTTPException(503, detail=SECRET))
    assert status == 503 and SECRET not in json.dumps(error)


def test_werkzeug_stock_description_gives_way_to_the_envelopes_sentence() -> None:
    from werkzeug.exceptions import NotFound

    status, error, _ = _error(_handler(), NotFound())
    assert status == 404
    assert error["details"] == "Nothing was found at this address."


def test_werkzeug_description_the_app_gave_is_the_details() -> None:
    from werkzeug.exceptions import Forbidden, NotFound

    class Gone(NotFound):
        description = "That report was archived."

    assert _error(_handler(), Forbidden("You may not see the reports."))[1]["details"] \
        == "You may not see the reports."
    assert _error(_handler(), Gone())[1]["details"] == "That report was archived."


def test_werkzeug_method_not_allowed_keeps_allow() -> None:
    from werkzeug.exceptions import MethodNotAllowed

    status, _, headers = _error(_handler(), MethodNotAllowed(valid_methods=["GET", "POST"]))
    assert status == 405
    assert (b"allow", b"GET, POST") in headers
    assert all(name != b"content-type" or value == b"application/json" for name, value in headers)


def test_werkzeug_redirect_is_not_an_error_status() -> None:
    from werkzeug.routing import RequestRedirect

    assert _error(_handler(), RequestRedirect("http://x/"))[0] == 500


@pytest.mark.parametrize(("name", "status"), [
    ("django.http.Http404", 404),
    ("django.core.exceptions.PermissionDenied", 403),
    ("django.core.exceptions.SuspiciousOperation", 400),
    ("django.core.exceptions.DisallowedHost", 400),
    ("django.core.exceptions.BadRequest", 400),
])
def test_django_exceptions_map_to_their_status_without_their_message(name: str,
                                                                     status: int) -> None:
    import importlib

    module, _, attr = name.rpartition(".")
    exc = getattr(importlib.import_module(module), attr)(SECRET)
    got, error, _ = _error(_handler(), exc)
    assert got == status
    assert SECRET not in json.dumps(error)


def test_unrelated_exception_with_a_status_attribute_is_not_believed() -> None:
    class UpstreamError(Exception):
        status_code = 401
        detail = "upstream token expired"
        code = 401
        description = "upstream"

    assert _error(_handler(), UpstreamError())[0] == 500


def test_user_registration_beats_a_framework_status() -> None:
    from starlette.exceptions import HTTPException

    assert _error(_handler(exception_map={HTTPException: 418}), HTTPException(404))[0] == 418


# -- validation -----------------------------------------------------------------------------


def _pydantic_errors() -> list[dict[str, Any]]:
    from pydantic import BaseModel, Field, ValidationError, field_validator

    class Signup(BaseModel):
        username: str = Field(max_length=3)
        password: int
        age: int

        @field_validator("age")
        @classmethod
        def adult(cls, value: int) -> int:
            raise ValueError("must be an adult")

    try:
        Signup(username="longer-than-3", password=SECRET, age=12)  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc.errors()
    raise AssertionError("validation should have failed")


def test_real_pydantic_errors_carry_the_input_we_must_drop() -> None:
    assert any(error.get("input") == SECRET for error in _pydantic_errors())


def test_redaction_keeps_loc_msg_and_type_only() -> None:
    redacted = redact_validation_errors(_pydantic_errors())
    assert [sorted(error) for error in redacted] == [["loc", "msg", "type"]] * 3
    assert [error["loc"] for error in redacted] == [["username"], ["password"], ["age"]]
    assert redacted[1]["type"] == "int_parsing"
    assert SECRET not in json.dumps(redacted)


def test_redaction_drops_ctx_values() -> None:
    errors = _pydantic_errors()
    assert any("ctx" in error for error in errors)
    redacted = json.dumps(redact_validation_errors(errors))
    assert "max_length" not in redacted and "ValueError" not in redacted


def test_fastapi_request_validation_error_becomes_a_redacted_422() -> None:
    from fastapi.exceptions import RequestValidationError

    status, error, _ = _error(_handler(), RequestValidationError(_pydantic_errors()))
    assert status == 422
    assert [item["loc"] for item in error["details"]] == [["username"], ["password"], ["age"]]
    assert SECRET not in json.dumps(error)


def test_django_form_errors_are_redacted_to_the_same_shape() -> None:
    data = {"email": [{"message": "Enter a valid email address.", "code": "invalid"}]}
    assert redact_validation_errors(data) == [
        {"loc": ["email"], "msg": "Enter a valid email address.", "type": "invalid"}]


def test_redaction_survives_odd_entries() -> None:
    redacted = redact_validation_errors(
        [None, {"loc": "field", "msg": 5}, {"loc": [object(), True]}])  # type: ignore[list-item]
    assert redacted[0] == {"loc": ["field"], "msg": "Invalid value.", "type": "invalid"}
    assert all(isinstance(part, str | int) for part in redacted[1]["loc"])


def test_redaction_keeps_at_most_one_hundred_errors() -> None:
    errors = [{"loc": [i], "msg": "m", "type": "t", "input": SECRET} for i in range(500)]
    assert len(redact_validation_errors(errors)) == 100


# -- each type resolved once, every instance still read ------------------------------------


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
