"""Default routing of the test project (tests override it with apply_routes)."""

channel_routing: list = []
