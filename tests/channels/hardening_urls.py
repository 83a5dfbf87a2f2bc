"""The test project's URLs plus the views the issue 15 real-process tests need."""

from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_out
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from channels.auth import close_sockets_on_logout
from tests.channels.oom_urls import urlpatterns as oom_urlpatterns
from tests.testproject.urls import urlpatterns as project_urlpatterns

# A project connects the receiver in its AppConfig.ready(); the URLconf is imported in
# every process that serves views, which is all this test needs.
user_logged_out.connect(close_sockets_on_logout, dispatch_uid="channels-close-on-logout")


@csrf_exempt
def upload_view(request):
    """Sizes of the uploaded files (never ``request.body``: after an upload was parsed
    from the stream, Django refuses it with RawPostDataException)."""
    return JsonResponse({name: upload.size for name, upload in request.FILES.items()})


@csrf_exempt
def logout_view(request):
    logout(request)
    return HttpResponse("logged out")


urlpatterns = [
    *project_urlpatterns,
    path("logout/", logout_view),
    path("upload/", upload_view),
    *oom_urlpatterns,
]
