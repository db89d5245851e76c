"""URLs of the demo site."""

from django.urls import path

from demo_site import views

urlpatterns = [
    path("", views.index),
    path("whoami", views.whoami),
    path("healthz", views.healthz),
    path("stream", views.stream),
    path("boom", views.boom),
    path("forbidden", views.forbidden),
]
