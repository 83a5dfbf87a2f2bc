from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Item


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "todo/index.html", {"items": Item.objects.all()})
