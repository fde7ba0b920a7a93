"""Braze Currents event types and the Mixpanel event names Braze's own connector gives them.

Stream names follow tap-braze-currents: the event type lowercased with ``.`` replaced by ``_``
(``users.behaviors.CustomEvent`` -> ``users_behaviors_customevent``).
"""

from __future__ import annotations

import re

from braze_mixpanel_common.currents import known_event_types, stream_name

# Every type of the shared Currents catalogue, plus two retired types that Braze's Mixpanel
# connector still lists.
KNOWN_EVENT_TYPES: tuple[str, ...] = (
    *known_event_types(),
    "users.campaigns.Abort",
    "users.canvas.Abort",
)

CUSTOM_EVENT_TYPE = "users.behaviors.CustomEvent"
PURCHASE_TYPE = "users.behaviors.Purchase"
CUSTOM_EVENT_PREFIX = "[Braze Custom Event] "

# Names Braze's glossary gives that the generic rule below would not produce.
_EXPLICIT_NAMES: dict[str, str] = {
    "users.behaviors.Purchase": "Purchase",
    "users.behaviors.app.SessionStart": "Session Start",
    "users.behaviors.app.FirstSession": "First Session",
    "users.behaviors.app.SessionEnd": "Session End",
    "users.behaviors.Location": "Location",
    "users.behaviors.InstallAttribution": "Install Attribution",
    "users.behaviors.Uninstall": "Uninstall",
    "users.behaviors.subscription.GlobalStateChange": "Global Subscription State Change",
    "users.behaviors.subscriptiongroup.StateChange": "Subscription Group State Change",
    "users.campaigns.Abort": "Campaign Abort",
    "users.campaigns.Conversion": "Campaign Conversion",
    "users.campaigns.EnrollInControl": "Campaign Enroll In Control",
    "users.canvas.Abort": "Canvas Abort",
    "users.canvas.Entry": "Canvas Entry",
    "users.canvas.Conversion": "Canvas Conversion",
    "users.canvas.exit.MatchedAudience": "Exit Match Audience",
    "users.canvas.exit.PerformedEvent": "Exit Perform Event",
    "users.messages.sms.CarrierSend": "SMS Send to Carrier",
    "users.messages.sms.InboundReceive": "SMS Inbound Received",
    "users.messages.pushnotification.IosForeground": "Push Notification iOS Foreground",
}

# How the lowercase path components read in an event name.
_COMPONENT_WORDS: dict[str, str] = {
    "pushnotification": "Push Notification",
    "inappmessage": "In-App Message",
    "contentcard": "Content Card",
    "newsfeedcard": "News Feed Card",
    "featureflag": "Feature Flag",
    "liveactivity": "Live Activity",
    "subscriptiongroup": "Subscription Group",
    "experimentstep": "Experiment Step",
    "canvasstep": "Canvas Step",
    "costep": "Canvas Co-Step",
    "agentconsole": "Agent Console",
    "sms": "SMS",
    "rcs": "RCS",
    "line": "LINE",
    "whatsapp": "WhatsApp",
    "email": "Email",
    "webhook": "Webhook",
    "banner": "Banner",
    "campaigns": "Campaign",
    "canvas": "Canvas",
    "subscription": "Subscription",
    "profile": "Profile",
    "exit": "Exit",
    "app": "App",
}
_GROUP_WORDS = {"users", "messages", "behaviors"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _words(component: str) -> str:
    if component in _COMPONENT_WORDS:
        return _COMPONENT_WORDS[component]
    return " ".join(w[:1].upper() + w[1:] for w in _CAMEL.split(component) if w)


def generic_event_name(event_type: str) -> str:
    """The fallback name of a Currents type: its last two meaningful components in title case.

    ``users.messages.email.MarkAsSpam`` -> ``Email Mark As Spam``; ``users.UserOrphan`` ->
    ``User Orphan``. Works on stream names too (``users_messages_email_newthing`` ->
    ``Email Newthing``), since an unknown type must never be dropped.
    """
    parts = [p for p in re.split(r"[._]", event_type) if p]
    meaningful = [p for p in parts if p.lower() not in _GROUP_WORDS] or parts[-1:]
    return " ".join(_words(p) for p in meaningful[-2:])


def event_name_for_type(event_type: str) -> str:
    """Mixpanel event name of a (non-custom) Currents event type."""
    return _EXPLICIT_NAMES.get(event_type) or generic_event_name(event_type)


EVENT_TYPE_BY_STREAM: dict[str, str] = {stream_name(t): t for t in KNOWN_EVENT_TYPES}
EVENT_NAMES: dict[str, str] = {t: event_name_for_type(t) for t in KNOWN_EVENT_TYPES}
