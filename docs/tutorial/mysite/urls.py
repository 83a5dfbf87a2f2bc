from chat import views
from django.contrib import admin
from django.urls import path, re_path

urlpatterns = [
    path("", views.index, name="index"),
    re_path(r"^chat/(?P<room_name>[-a-zA-Z0-9_]{1,50})/$", views.room, name="room"),
    path("admin/", admin.site.urls),
]
