"""proxygate.contrib.django: settings, system checks, sync and async stacks, Django's error pages."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.framework_servers import setup_django

setup_django()

from asgiref.sync import iscoroutinefunction  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import (  # noqa: E402
    ImproperlyConfigured,
    PermissionDenied,
    SuspiciousOperation,
)
from django.core.signals import got_request_exception  # noqa: E402
from django.http import (  # noqa: E402
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from proxygate.auth.hashing import hash_password  # noqa: E402
from proxygate.contrib.django import ProxyGateMiddleware, check_settings  # noqa: E402
from support.conformance import Request, call_asgi  # noqa: E402
from support.servers import child_env  # noqa: E402

SECRET = "hunter2-in-the-traceback"
USERS = {"alice": hash_password("wonderland", "bcrypt", rounds=4)}
GOOD = "Basic " + base64.b64encode(b"alice:wonderland").decode()
MIDDLEWARE = ["proxygate.contrib.django.ProxyGateMiddleware",
              "django.middleware.common.CommonMiddleware"]
BASE = {"users": USERS, "realm": "tests", "exempt_paths": ["/open"]}


class OutOfStock(Exception):
    pass


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.proxygate_user  # type: ignore[attr-defined]
    return JsonResponse({"user": user.username if user else None,
                         "remote_user": request.META.get("REMOTE_USER"),
                         "seen": request.headers.get("Proxy-Authorization")})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(SECRET)


def out_of_stock(request: HttpRequest) -> HttpResponse:
    raise OutOfStock(SECRET)


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("no")


def suspicious(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation(SECRET)


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404(SECRET)


def text_400(request: HttpRequest) -> HttpResponse:
    return HttpResponseBadRequest("the name field is required", content_type="text/plain")


def with_cookie_404(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("<h1>gone</h1>", status=404)
    response.set_cookie("seen", "1")
    return response


def json_401(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"detail": "token expired"}, status=401)


def html_407(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<h1>log in to the proxy</h1>", status=407)


def open_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.proxygate_user})  # type: ignore[attr-defined]


urlpatterns = [
    path("whoami", whoami),
    path("boom", boom),
    path("out-of-stock", out_of_stock),
    path("forbidden", forbidden),
    path("suspicious", suspicious),
    path("missing", missing),
    path("text-400", text_400),
    path("cookie-404", with_cookie_404),
    path("json-401", json_401),
    path("html-407", html_407),
    path("open", open_view),
]


def gate_settings(django_debug: bool = False, **options: Any) -> override_settings:
    return override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE, DEBUG=django_debug,
                             PROXYGATE={**BASE, **options})


@pytest.fixture
def client() -> Iterator[Client]:
    with gate_settings():
        yield Client(headers={"Proxy-Authorization": GOOD}, raise_request_exception=False)


def envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error: dict[str, Any] = json.loads(response.content)["error"]
    assert error["code"] == status
    return error


# -- configuration and system checks --------------------------------------------------


def check_ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [message.id for message in check_settings()]  # type: ignore[misc]


def test_a_good_setting_passes_the_checks() -> None:
    assert check_ids(PROXYGATE=BASE, MIDDLEWARE=MIDDLEWARE) == []


def test_a_misspelled_option_is_error_e002_with_a_suggestion() -> None:
    with override_settings(PROXYGATE={**BASE, "reaml": "x"}, MIDDLEWARE=MIDDLEWARE):
        [message] = check_settings()
    assert message.id == "proxygate.E002"
    assert "'reaml'" in message.msg and "realm" in message.msg
    assert message.hint and "settings.PROXYGATE" in message.hint


def test_a_bad_value_is_error_e002_naming_the_option() -> None:
    with override_settings(PROXYGATE={**BASE, "realm": 'say "hi"'}, MIDDLEWARE=MIDDLEWARE):
        [message] = check_settings()
    assert message.id == "proxygate.E002"
    assert "realm" in message.msg


def test_a_missing_setting_is_error_e001() -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        from django.conf import settings

        del settings.PROXYGATE
        assert [m.id for m in check_settings()] == ["proxygate.E001"]


def test_a_missing_middleware_is_warning_w001() -> None:
    assert check_ids(PROXYGATE=BASE, MIDDLEWARE=MIDDLEWARE[1:]) == ["proxygate.W001"]


def test_manage_py_check_reports_a_bad_option(tmp_path: Path) -> None:
    (tmp_path / "bad_settings.py").write_text(textwrap.dedent("""
        SECRET_KEY = "x"
        INSTALLED_APPS = ["proxygate.contrib.django"]
        MIDDLEWARE = ["proxygate.contrib.django.ProxyGateMiddleware"]
        PROXYGATE = {"users": {}, "mode": "reverse"}
        DATABASES = {}
    """))
    env = child_env({"PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "bad_settings"})
    done = subprocess.run([sys.executable, "-m", "django", "check"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "proxygate.E002" in done.stderr
    assert "mode must be 'proxy' or 'origin'" in done.stderr
    assert "HINT" in done.stderr


def test_a_bad_setting_stops_the_middleware_at_startup() -> None:
    with override_settings(PROXYGATE={"realm": "x"}), pytest.raises(ImproperlyConfigured,
                                                                    match="users is required"):
        ProxyGateMiddleware(lambda request: HttpResponse())


def test_sync_get_response_makes_a_sync_middleware() -> None:
    with override_settings(PROXYGATE=BASE):
        middleware = ProxyGateMiddleware(lambda request: HttpResponse())
    assert not iscoroutinefunction(middleware)


def test_async_get_response_makes_an_async_middleware() -> None:
    async def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with override_settings(PROXYGATE=BASE):
        middleware = ProxyGateMiddleware(get_response)
    assert iscoroutinefunction(middleware)


def test_an_async_users_callable_is_refused_in_a_sync_stack() -> None:
    async def verify(username: str, password: str) -> bool:
        return True

    with override_settings(PROXYGATE={"users": verify}), pytest.raises(ImproperlyConfigured,
                                                                        match="async"):
        ProxyGateMiddleware(lambda request: HttpResponse())


# -- authentication and identity ------------------------------------------------------


def test_no_credentials_get_the_407_envelope_with_the_challenge() -> None:
    with gate_settings():
        response = Client().get("/whoami")
    envelope(response, 407)
    assert response["Proxy-Authenticate"] == 'Basic realm="tests", charset="UTF-8"'


def test_the_user_is_request_proxygate_user_and_remote_user(client: Client) -> None:
    seen = client.get("/whoami").json()
    assert (seen["user"], seen["remote_user"]) == ("alice", "alice")


def test_the_view_never_sees_proxy_authorization(client: Client) -> None:
    assert client.get("/whoami").json()["seen"] is None


def test_exempt_paths_have_no_user() -> None:
    with gate_settings():
        response = Client().get("/open")
    assert response.json() == {"user": None}


def test_origin_mode_answers_401_with_www_authenticate() -> None:
    with gate_settings(mode="origin"):
        response = Client().get("/whoami")
    envelope(response, 401)
    assert response["WWW-Authenticate"].startswith('Basic realm="tests"')


def test_async_stack_authenticates_and_passes_the_user() -> None:
    async def run() -> Any:
        with gate_settings():
            denied = await AsyncClient().get("/whoami")
            # Per request: AsyncClient(headers=...) would send them under WSGI names.
            allowed = await AsyncClient().get("/whoami", headers={"Proxy-Authorization": GOOD})
        return denied, allowed

    denied, allowed = asyncio.run(run())
    envelope(denied, 407)
    assert allowed.json()["user"] == "alice"


def test_asgi_handler_ignores_underscore_credentials() -> None:
    # AsyncClient rewrites underscores to hyphens, so drive the handler with raw ASGI headers.
    with gate_settings():
        app = get_asgi_application()
        reply = call_asgi(app, Request("GET", "/whoami", (("proxy_authorization", GOOD),)))
    assert reply.status == 407
    assert reply.json()["error"]["code"] == 407


def test_asgi_handler_strips_the_underscore_twin_of_good_credentials() -> None:
    with gate_settings():
        app = get_asgi_application()
        reply = call_asgi(app, Request("GET", "/whoami", (("Proxy-Authorization", GOOD),
                                                          ("proxy_authorization", "Basic eDp5"))))
    assert reply.json() == {"user": "alice", "remote_user": "alice", "seen": None}


# -- Django's error pages become envelopes --------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG-off", "DEBUG-on"])
@pytest.mark.parametrize(("where", "status"), [
    ("/no-such-page", 404), ("/missing", 404), ("/boom", 500), ("/forbidden", 403),
    ("/suspicious", 400),
])
def test_django_error_pages_become_envelopes_without_secrets(debug: bool, where: str,
                                                              status: int) -> None:
    with gate_settings(django_debug=debug):
        response = Client(headers={"Proxy-Authorization": GOOD, "Accept": "text/html"},
                          raise_request_exception=False).get(where)
    envelope(response, status)
    for leak in (SECRET.encode(), b"Traceback", b"RuntimeError", b"<html"):
        assert leak not in response.content


def test_proxygate_debug_puts_the_exception_in_a_500() -> None:
    with gate_settings(debug=True):
        response = Client(headers={"Proxy-Authorization": GOOD},
                          raise_request_exception=False).get("/boom")
    details = envelope(response, 500)["details"]
    assert (details["exception"], details["message"]) == ("RuntimeError", SECRET)


def test_exception_map_applies_to_exceptions_django_caught() -> None:
    with gate_settings(exception_map={OutOfStock: (409, "Out of stock")}):
        response = Client(headers={"Proxy-Authorization": GOOD},
                          raise_request_exception=False).get("/out-of-stock")
    assert envelope(response, 409)["message"] == "Out of stock"


def test_got_request_exception_still_fires(client: Client) -> None:
    seen: list[object] = []

    def receiver(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
        seen.append(request)

    got_request_exception.connect(receiver)
    try:
        client.get("/boom")
    finally:
        got_request_exception.disconnect(receiver)
    assert len(seen) == 1


def test_the_500_is_logged_once_by_django_not_again_by_proxygate(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        client.get("/boom")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["django.request"]
    assert errors[0].exc_info is not None


def test_the_test_client_still_raises_view_exceptions_by_default() -> None:
    with gate_settings(), pytest.raises(RuntimeError, match=SECRET):
        Client(headers={"Proxy-Authorization": GOOD}).get("/boom")


def test_a_short_plain_text_400_becomes_details(client: Client) -> None:
    assert envelope(client.get("/text-400"), 400)["details"] == "the name field is required"


def test_cookies_survive_the_replacement(client: Client) -> None:
    response = client.get("/cookie-404")
    envelope(response, 404)
    assert response.cookies["seen"].value == "1"


def test_a_json_401_is_normalized_and_gains_the_challenge() -> None:
    with gate_settings(mode="origin"):
        response = Client(headers={"Authorization": GOOD}).get("/json-401")
    assert envelope(response, 401)["details"] == "token expired"
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_a_json_401_passes_and_gains_the_challenge_when_json_errors_are_passed() -> None:
    with gate_settings(mode="origin", pass_json_errors=True):
        response = Client(headers={"Authorization": GOOD}).get("/json-401")
    assert response.json() == {"detail": "token expired"}
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_the_apps_own_html_407_becomes_an_envelope_with_the_challenge(client: Client) -> None:
    response = client.get("/html-407")
    envelope(response, 407)
    assert response["Proxy-Authenticate"].startswith("Basic ")


def test_head_of_an_error_has_no_body(client: Client) -> None:
    response = client.head("/no-such-page")
    assert response.status_code == 404
    assert response.content == b""


# -- RemoteUserBackend and users="django", in a project with a database -----------------

AUTH_PROJECT = '''
import json, sys
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="x", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="auth_urls",
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "proxygate.contrib.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    MIDDLEWARE=[
        "proxygate.contrib.django.ProxyGateMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.RemoteUserMiddleware",
    ],
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend",
                             "django.contrib.auth.backends.ModelBackend"],
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    PROXYGATE={"users": "django", "realm": "accounts"},
)
django.setup()

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
User.objects.create_user("carol", password="correct horse")
User.objects.create_user("dave", password="battery staple", is_active=False)

def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

results = {}
for name, credentials in [("good", basic("carol", "correct horse")),
                          ("wrong", basic("carol", "nope")),
                          ("inactive", basic("dave", "battery staple"))]:
    response = Client(headers={"Proxy-Authorization": credentials}).get("/me")
    results[name] = {"status": response.status_code,
                     "body": json.loads(response.content)}

import asyncio
from django.test import AsyncClient

async def through_asgi(**headers):
    response = await AsyncClient().get("/me", headers=headers)
    return {"status": response.status_code, "body": json.loads(response.content)}

carol = basic("carol", "correct horse")
results["good_async"] = asyncio.run(through_asgi(**{"Proxy-Authorization": carol}))
spoof = {"Proxy-Authorization": carol, "Remote-User": "erin"}
User.objects.create_user("erin", password="unknown to carol")
results["spoof_async"] = asyncio.run(through_asgi(**spoof))
response = Client(headers=spoof).get("/me")
results["spoof_sync"] = {"status": response.status_code, "body": json.loads(response.content)}
print(json.dumps(results))
'''

AUTH_URLS = '''
from django.http import JsonResponse
from django.urls import path

def me(request):
    return JsonResponse({"username": request.user.username,
                         "authenticated": request.user.is_authenticated})

urlpatterns = [path("me", me)]
'''


@pytest.fixture(scope="module")
def auth_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("auth_project")
    (where / "auth_project.py").write_text(AUTH_PROJECT)
    (where / "auth_urls.py").write_text(AUTH_URLS)
    env = child_env({"PYTHONPATH": str(where)})
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "auth_project.py", str(where / "db.sqlite3")],
                          env=env, cwd=where, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_users_django_accepts_a_django_account(auth_project: dict[str, Any]) -> None:
    assert auth_project["good"]["status"] == 200


def test_remote_user_backend_logs_the_proxy_user_into_django(
        auth_project: dict[str, Any]) -> None:
    assert auth_project["good"]["body"] == {"username": "carol", "authenticated": True}


def test_users_django_works_in_an_async_stack(auth_project: dict[str, Any]) -> None:
    assert auth_project["good_async"] == {"status": 200,
                                          "body": {"username": "carol", "authenticated": True}}


@pytest.mark.parametrize("stack", ["sync", "async"])
def test_a_remote_user_header_cannot_choose_the_django_user(auth_project: dict[str, Any],
                                                            stack: str) -> None:
    assert auth_project[f"spoof_{stack}"]["body"] == {"username": "carol", "authenticated": True}


def test_users_django_refuses_a_wrong_password(auth_project: dict[str, Any]) -> None:
    assert auth_project["wrong"]["status"] == 407


def test_users_django_refuses_an_inactive_account(auth_project: dict[str, Any]) -> None:
    assert auth_project["inactive"]["status"] == 407


# -- forward-proxy clients --------------------------------------------------------------


def test_proxy_mode_with_only_local_allowed_hosts_is_warning_w002() -> None:
    for hosts in (["127.0.0.1", "localhost", "testserver"], [], ["[::1]", ".localhost"]):
        with override_settings(PROXYGATE=BASE, MIDDLEWARE=MIDDLEWARE, ALLOWED_HOSTS=hosts):
            [message] = check_settings()
        assert message.id == "proxygate.W002"
        assert "forward-proxy requests" in message.msg
        assert message.hint and "ALLOWED_HOSTS" in message.hint


@pytest.mark.parametrize("hosts", [["myservice.internal", "localhost"], ["*"], [".internal"]])
def test_allowed_hosts_naming_a_target_host_pass_the_checks(hosts: list[str]) -> None:
    assert check_ids(PROXYGATE=BASE, MIDDLEWARE=MIDDLEWARE, ALLOWED_HOSTS=hosts) == []


def test_origin_mode_does_not_care_which_hosts_are_allowed() -> None:
    assert check_ids(PROXYGATE={**BASE, "mode": "origin"}, MIDDLEWARE=MIDDLEWARE,
                     ALLOWED_HOSTS=["localhost"]) == []


def _wsgiref_call(target: str, **headers: str) -> tuple[str, bytes]:
    """A request as runserver (wsgiref) hands it over: the whole URL in PATH_INFO."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    environ = RequestFactory()._base_environ(  # type: ignore[attr-defined]
        PATH_INFO=target, SERVER_SOFTWARE="WSGIServer/0.2",
        HTTP_HOST="myservice.internal", **headers)
    seen: list[str] = []
    body = b"".join(WSGIHandler()(environ, lambda status, headers, *a: seen.append(status)))
    return seen[0], body


def test_an_absolute_form_target_under_runserver_routes_on_its_path() -> None:
    with gate_settings(), override_settings(ALLOWED_HOSTS=["myservice.internal"]):
        status, body = _wsgiref_call("http://myservice.internal/whoami",
                                     HTTP_PROXY_AUTHORIZATION=GOOD)
        assert status.startswith("200"), body[:300]
        assert json.loads(body)["user"] == "alice"
        status, body = _wsgiref_call("http://myservice.internal/open")
        assert status.startswith("200"), body[:300]  # exempt: matched on the path
        status, body = _wsgiref_call("http://myservice.internal/whoami")
        assert status.startswith("407")


def test_bearer_and_auth_type_from_the_django_setting() -> None:
    from proxygate.auth.tokens import hash_token

    with gate_settings(schemes=["basic", "bearer"], tokens={"ci": hash_token("pgt_django")}):
        client = Client(raise_request_exception=False)
        response = client.get("/whoami", headers={"Proxy-Authorization": "Bearer pgt_django"})
        assert response.status_code == 200 and response.json()["user"] == "ci"
        refused = client.get("/whoami", headers={"Proxy-Authorization": "Bearer nope"})
        assert refused.status_code == 407
        assert 'error="invalid_token"' in refused["Proxy-Authenticate"]


def test_digest_over_a_mapping_fails_the_system_check_naming_digest() -> None:
    with override_settings(PROXYGATE={**BASE, "schemes": ["digest"]}, MIDDLEWARE=MIDDLEWARE):
        messages = check_settings()  # type: ignore[misc]
    [error] = [m for m in messages if m.id == "proxygate.E002"]
    assert "digest" in error.msg
