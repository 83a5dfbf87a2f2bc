"""``manage.py create_demo_users``: two users to try the chat with, idempotently."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = ("alice", "bob")
DEMO_PASSWORD = "channels-demo"


class Command(BaseCommand):
    help = f"Create the demo users {', '.join(DEMO_USERS)} (password {DEMO_PASSWORD!r})."

    def handle(self, *args, **options) -> None:
        user_model = get_user_model()
        for username in DEMO_USERS:
            user, created = user_model.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
        self.stdout.write(
            f"Demo users: {', '.join(DEMO_USERS)}, password {DEMO_PASSWORD!r} "
            "(or sign up at /signup/)."
        )
