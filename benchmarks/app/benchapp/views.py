from django.http import HttpRequest, HttpResponse

HELLO = b"Hello, world!\n"  # 14 bytes, as W1 asks


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(HELLO, content_type="text/plain")
