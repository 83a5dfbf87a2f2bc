"""The delay server: ``asgi.delay`` requests stored in the database and sent when due.

Add ``"channels.delay"`` to ``INSTALLED_APPS``, migrate, and run ``manage.py rundelay``
next to the workers (C-72..C-75, A-90, A-91).
"""
