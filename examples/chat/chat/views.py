"""Plain Django views: they run in the workers, behind ``http.request`` (C-36, C-40)."""

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from .forms import RoomForm
from .models import Room


@login_required
def index(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect("room", slug=form.save().slug)
    return render(request, "chat/index.html", {"rooms": Room.objects.all(), "form": form})


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "chat/room.html", {"room": get_object_or_404(Room, slug=slug)})


def signup(request: HttpRequest) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("index")
    return render(request, "registration/signup.html", {"form": form})
