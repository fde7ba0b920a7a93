"""Braze Currents event types and the Mixpanel event names Braze's own connector gives them.

Stream names follow tap-braze-currents: the event type lowercased with ``.`` replaced by ``_``
(``users.behaviors.CustomEvent`` -> ``users_behaviors_customevent``).
"""

from __future__ import annotations

import re

# Every Currents storage schema at Appboy/currents-examples d6a71e3, plus the types Braze's
# Mixpanel connector documents that have no sample file there.
KNOWN_EVENT_TYPES: tuple[str, ...] = (
    "agentconsole.AgentExecuted",
    "agentconsole.ToolInvocation",
    "users.RandomBucketNumberUpdate",
    "users.UserDeleteRequest",
    "users.UserOrphan",
    "users.behaviors.CustomEvent",
    "users.behaviors.InstallAttribution",
    "users.behaviors.Location",
    "users.behaviors.Purchase",
    "users.behaviors.Uninstall",
    "users.behaviors.app.FirstSession",
    "users.behaviors.app.SessionEnd",
    "users.behaviors.app.SessionStart",
    "users.behaviors.liveactivity.PushToStartTokenChange",
    "users.behaviors.liveactivity.UpdateTokenChange",
    "users.behaviors.pushnotification.TokenStateChange",
    "users.behaviors.subscription.GlobalStateChange",
    "users.behaviors.subscriptiongroup.StateChange",
    "users.campaigns.Abort",
    "users.campaigns.Conversion",
    "users.campaigns.EnrollInControl",
    "users.canvas.Abort",
    "users.canvas.Conversion",
    "users.canvas.Entry",
    "users.canvas.costep.Send",
    "users.canvas.exit.MatchedAudience",
    "users.canvas.exit.PerformedEvent",
    "users.canvas.experimentstep.Conversion",
    "users.canvas.experimentstep.SplitEntry",
    "users.canvasstep.Progression",
    "users.messages.banner.Abort",
    "users.messages.banner.Click",
    "users.messages.banner.Dismiss",
    "users.messages.banner.Impression",
    "users.messages.contentcard.Abort",
    "users.messages.contentcard.Click",
    "users.messages.contentcard.Dismiss",
    "users.messages.contentcard.Impression",
    "users.messages.contentcard.Send",
    "users.messages.email.Abort",
    "users.messages.email.Bounce",
    "users.messages.email.Click",
    "users.messages.email.Deferral",
    "users.messages.email.Delivery",
    "users.messages.email.MarkAsSpam",
    "users.messages.email.Open",
    "users.messages.email.Retry",
    "users.messages.email.Send",
    "users.messages.email.SoftBounce",
    "users.messages.email.Unsubscribe",
    "users.messages.featureflag.Impression",
    "users.messages.inappmessage.Abort",
    "users.messages.inappmessage.Click",
    "users.messages.inappmessage.Impression",
    "users.messages.line.Abort",
    "users.messages.line.Click",
    "users.messages.line.InboundReceive",
    "users.messages.line.Retry",
    "users.messages.line.Send",
    "users.messages.liveactivity.Outcome",
    "users.messages.liveactivity.Send",
    "users.messages.newsfeedcard.Click",
    "users.messages.newsfeedcard.Impression",
    "users.messages.pushnotification.Abort",
    "users.messages.pushnotification.Bounce",
    "users.messages.pushnotification.IosForeground",
    "users.messages.pushnotification.Open",
    "users.messages.pushnotification.Retry",
    "users.messages.pushnotification.Send",
    "users.messages.rcs.Abort",
    "users.messages.rcs.Click",
    "users.messages.rcs.Delivery",
    "users.messages.rcs.InboundReceive",
    "users.messages.rcs.Read",
    "users.messages.rcs.Rejection",
    "users.messages.rcs.Send",
    "users.messages.sms.Abort",
    "users.messages.sms.CarrierSend",
    "users.messages.sms.Delivery",
    "users.messages.sms.DeliveryFailure",
    "users.messages.sms.InboundReceive",
    "users.messages.sms.Rejection",
    "users.messages.sms.Retry",
    "users.messages.sms.Send",
    "users.messages.sms.ShortLinkClick",
    "users.messages.webhook.Abort",
    "users.messages.webhook.Failure",
    "users.messages.webhook.Retry",
    "users.messages.webhook.Send",
    "users.messages.whatsapp.Abort",
    "users.messages.whatsapp.Click",
    "users.messages.whatsapp.Delivery",
    "users.messages.whatsapp.Failure",
    "users.messages.whatsapp.InboundReceive",
    "users.messages.whatsapp.Read",
    "users.messages.whatsapp.Retry",
    "users.messages.whatsapp.Send",
    "users.profile.Update",
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


def stream_name_for_type(event_type: str) -> str:
    """The tap-braze-currents stream name of an event type."""
    return event_type.lower().replace(".", "_")


EVENT_TYPE_BY_STREAM: dict[str, str] = {stream_name_for_type(t): t for t in KNOWN_EVENT_TYPES}
EVENT_NAMES: dict[str, str] = {t: event_name_for_type(t) for t in KNOWN_EVENT_TYPES}
