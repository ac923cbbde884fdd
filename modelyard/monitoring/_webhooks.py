"""Where alert webhooks may post: the URL checks live in `modelyard.security` (the registry's
webhooks use them too); re-exported here so existing imports keep working."""

from __future__ import annotations

from modelyard.security import DEFAULT_PORTS, WebhookTarget, parse_webhook, webhook_url

__all__ = ["DEFAULT_PORTS", "WebhookTarget", "parse_webhook", "webhook_url"]
