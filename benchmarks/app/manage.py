#!/usr/bin/env python
"""manage.py of the benchmark project (runworker, and gunicorn's WSGI control)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
