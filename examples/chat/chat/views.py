"""Plain Django views: they run in the workers, which serve ``http.request`` like any channel."""

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .forms import RoomForm
from .management.commands.create_demo_users import DEMO_PASSWORD, DEMO_USERS
from .models import Room


@login_required
def index(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect("room", slug=form.save().slug)
    return render(request, "chat/index.html", {"rooms": Room.objects.all(), "form": form})


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    found = Room.objects.filter(slug=slug).first()
    if found is None:
        # A stale link or a typo: back to the room list, saying what happened.
        messages.info(request, f"There is no room “{slug}”. Pick one below or create it.")
        return redirect("index")
    return render(request, "chat/room.html", {"room": found})


def signup(request: HttpRequest) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("index")
    return render(request, "registration/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    """Django's login page, plus a hint naming the demo users when they exist."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        usernames = get_user_model().objects.filter(username__in=DEMO_USERS)
        context["demo_users"] = sorted(usernames.values_list("username", flat=True))
        context["demo_password"] = DEMO_PASSWORD
        return context
