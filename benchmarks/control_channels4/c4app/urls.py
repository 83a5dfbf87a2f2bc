from django.http import HttpRequest, HttpResponse
from django.urls import path

HELLO = b"Hello, world!\n"  # the bench app's /hello/ (readiness check here)


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(HELLO, content_type="text/plain")


urlpatterns = [path("hello/", hello)]
