from django.urls import include, path

import django_eventstream

from . import views

urlpatterns = [
    path("health", views.health),
    path("events/", include(django_eventstream.urls)),
    path("send/<str:channel>", views.send),
    path("store/<str:channel>", views.store),
    path("log", views.log),
    path("ws", views.ws),
    path("stream", views.stream),
    path("sse", views.sse),
    path("poll", views.poll),
    path("instruct", views.instruct),
    path("status", views.status),
    path("plain", views.plain),
    path("multi", views.multi),
    path("echo", views.echo),
    path("headers", views.headers),
]
