from django.urls import path

from benchapp.views import hello

urlpatterns = [path("hello/", hello)]
