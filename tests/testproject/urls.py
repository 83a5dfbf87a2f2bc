"""URLs of the test project: ordinary Django views served through AsgiHandler."""

from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("echo/", views.echo),
    path("stream/", views.stream),
    path("big/", views.big),
    path("file/", views.file),
    path("cookie/", views.cookie),
    path("boom/", views.boom),
    path("later/", views.later),
    path("login/", views.login_view),
    path("reload-marker/", views.reload_marker),
    path("session/set/", views.session_set),
    path("session/get/", views.session_get),
]
