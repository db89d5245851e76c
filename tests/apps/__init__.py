"""Tiny ASGI and WSGI apps that real servers run in the server tests."""
