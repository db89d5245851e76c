"""The demo site: settings, URLs and views of examples/django_site."""
