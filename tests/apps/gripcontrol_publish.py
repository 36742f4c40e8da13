"""Publishes one WebSocket message with PyPI's gripcontrol, as a user's Python app would.

Usage: gripcontrol_publish.py CONTROL_URI CHANNEL TEXT
Used by holdfast's tests/wsoh_apps.rs; exits non-zero if the publish fails.
"""

import sys

from gripcontrol import GripPubControl, WebSocketMessageFormat
from pubcontrol import Item


def main():
    control_uri, channel, text = sys.argv[1:4]
    pub = GripPubControl({"control_uri": control_uri})
    # blocking=True: raises if holdfast refuses the publish.
    pub.publish(channel, Item(WebSocketMessageFormat(text)), blocking=True)
    pub.close()
    print("published")


if __name__ == "__main__":
    main()
