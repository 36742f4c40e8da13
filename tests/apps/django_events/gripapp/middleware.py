"""Refuses GRIP endpoints unless the request carries a Grip-Sig that django-grip verified, and
logs what the proxy sent to them (GET /log reads it)."""

import threading

from django.http import HttpResponse

# Paths that must only be reached through a signing GRIP proxy. Without a valid Grip-Sig
# django-eventstream would stream by itself (no GRIP at all) and the tests would prove nothing.
GRIP_ONLY = ("/events/", "/ws")

_lock = threading.Lock()
LOG = []


class RequireProxy:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(GRIP_ONLY):
            entry = {
                "path": request.get_full_path(),
                "method": request.method,
                "signed": bool(request.grip.signed),
                "grip_last": request.META.get("HTTP_GRIP_LAST"),
                "last_event_id": request.META.get("HTTP_LAST_EVENT_ID"),
            }
            with _lock:
                LOG.append(entry)
            if not request.grip.signed:
                return HttpResponse(
                    "no valid Grip-Sig\n", status=403, content_type="text/plain"
                )
        return self.get_response(request)
