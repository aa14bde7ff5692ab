"""Notifications declared in git: device events to webhooks and chat, rollout outcomes
as commit statuses on GitHub and GitLab (issue 11 item 3, like Flux's Provider and Alert).

`notifier.Notifier` is the task `fota serve` runs beside the controller; `messages` and
`commit_status` build what is sent (pure), `delivery.Sender` is one provider's bounded
queue with retries. The manifest (`manifests/notifications.yaml`) is parsed by
`reconciler.sources.notifications`. Reads the store; never imports the controller.
"""

from reconciler.notify.delivery import DeliveryConfig
from reconciler.notify.notifier import Notifier, NotifyConfig

__all__ = ["DeliveryConfig", "Notifier", "NotifyConfig"]
