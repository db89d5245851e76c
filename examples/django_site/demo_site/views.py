"""Views of the demo site: the user is ``request.proxygate_user`` and ``META["REMOTE_USER"]``."""

from collections.abc import AsyncIterator, Iterator

from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"service": "django", "user": request.proxygate_user.username})  # type: ignore[attr-defined]


@require_safe
def whoami(request: HttpRequest) -> HttpResponse:
    user = request.proxygate_user  # type: ignore[attr-defined]
    return JsonResponse({
        "user": user.username if user else None,
        "remote_user": request.META.get("REMOTE_USER"),
        "proxy_authorization": request.headers.get("Proxy-Authorization"),
        "authorization": request.headers.get("Authorization"),
    })


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def stream(request: HttpRequest) -> HttpResponse:
    # Django serves sync iterators best under WSGI and async ones under ASGI (it warns
    # when it has to convert): hand it the kind its handler consumes.
    def lines() -> Iterator[str]:
        for number in range(5):
            yield f"report line {number}\n"

    async def alines() -> AsyncIterator[str]:
        for line in lines():
            yield line

    under_asgi = isinstance(request, ASGIRequest)
    return StreamingHttpResponse(alines() if under_asgi else lines(), content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("You may not see the reports.")
