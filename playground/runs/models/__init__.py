"""The runs app's models, one module per idea:

- references: uploaded videos and images, and "Fix it" conversions of them;
- runs: a run, its status changes (each a guarded conditional UPDATE) and its images;
- batches: the runs one press of Generate makes;
- sharing: public links to a run or a batch;
- tracking: webhook deliveries applied, lock rows, and each worker's tracker.
"""

from playground.runs.models.batches import Batch, BatchTotals
from playground.runs.models.references import (
    FIX_STALE_AFTER,
    FixStatus,
    Reference,
    ReferenceFix,
    ReferenceKind,
)
from playground.runs.models.runs import (
    ACTIVE,
    CANCELLABLE,
    FINAL,
    STATUS_KEY_SALT,
    CostSource,
    Run,
    RunImage,
    RunQuerySet,
    Status,
    poll_interval,
)
from playground.runs.models.sharing import (
    DEFAULT_SHARE_EXPIRY,
    SHARE_EXPIRIES,
    ShareLink,
    ShareLinkQuerySet,
)
from playground.runs.models.tracking import Tracker, TrackerLease, WebhookEvent

__all__ = [
    "ACTIVE",
    "CANCELLABLE",
    "DEFAULT_SHARE_EXPIRY",
    "FINAL",
    "FIX_STALE_AFTER",
    "SHARE_EXPIRIES",
    "STATUS_KEY_SALT",
    "Batch",
    "BatchTotals",
    "CostSource",
    "FixStatus",
    "Reference",
    "ReferenceFix",
    "ReferenceKind",
    "Run",
    "RunImage",
    "RunQuerySet",
    "ShareLink",
    "ShareLinkQuerySet",
    "Status",
    "Tracker",
    "TrackerLease",
    "WebhookEvent",
    "poll_interval",
]
