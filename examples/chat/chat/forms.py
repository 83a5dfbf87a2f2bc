from django import forms
from django.utils.text import slugify

from .models import Room


class RoomForm(forms.Form):
    name = forms.CharField(max_length=80, label="New room")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not slugify(name):
            raise forms.ValidationError("Use at least one letter or digit in the room name.")
        return name

    def save(self) -> Room:
        name = self.cleaned_data["name"]
        room, _ = Room.objects.get_or_create(slug=slugify(name)[:50], defaults={"name": name})
        return room
