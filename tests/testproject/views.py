"""Plain Django views served through AsgiHandler in the tests (C-34..C-40)."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import authenticate, login
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from channels.exceptions import ResponseLater

DATA_FILE = Path(__file__).resolve().parent / "static" / "testproject" / "data.bin"


def hello(request):
    return HttpResponse("Hello World!", content_type="text/plain")


@csrf_exempt
def echo(request):
    """Reports what Django parsed from the request."""
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
            "GET": {key: request.GET.getlist(key) for key in request.GET},
            "POST": {key: request.POST.getlist(key) for key in request.POST},
            "FILES": {key: request.FILES[key].read().decode() for key in request.FILES},
            "COOKIES": request.COOKIES,
            "body_length": len(request.body),
            "content_type": request.content_type,
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "host": request.get_host() if "HTTP_HOST" in request.META else None,
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "headers": {
                key: value
                for key, value in request.META.items()
                if key.startswith("HTTP_") or key.startswith("CONTENT_")
            },
        }
    )


def stream(request):
    count = int(request.GET.get("count", "3"))
    return StreamingHttpResponse(f"part {index}\n".encode() for index in range(count))


def big(request):
    size = int(request.GET.get("size", str(1024 * 1024)))
    return HttpResponse(b"x" * size, content_type="application/octet-stream")


def file(request):
    return FileResponse(DATA_FILE.open("rb"))


def cookie(request):
    response = HttpResponse("cookie set")
    response.set_cookie("flavour", "oat", max_age=60)
    return response


def boom(request):
    raise RuntimeError("view exploded on purpose")


def later(request):
    raise ResponseLater()


@csrf_exempt
def login_view(request):
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("bad credentials", status=403)
    login(request, user)
    return HttpResponse(f"logged in as {user.username}")


def reload_marker(request):
    from django.conf import settings

    return HttpResponse(getattr(settings, "RELOAD_MARKER", "none"))


def session_set(request):
    request.session["value"] = request.GET.get("value", "")
    return HttpResponse("stored")


def session_get(request):
    return HttpResponse(json.dumps({"value": request.session.get("value")}))
