"""Models used by the channels tests (data binding)."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Note(models.Model):
    """A bound model: ``room`` decides which group hears about it; ``secret`` is excluded."""

    title = models.CharField(max_length=100)
    body = models.TextField(blank=True, default="")
    room = models.CharField(max_length=50, default="lobby")
    secret = models.CharField(max_length=100, blank=True, default="")
    size = models.IntegerField(default=0)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)

    def shout(self) -> str:
        return self.title.upper()
