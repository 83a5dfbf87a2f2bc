"""URLs of the test project; test modules add views through their own urlconfs."""

urlpatterns: list = []
