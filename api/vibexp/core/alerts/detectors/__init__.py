"""The unusual-activity detectors, run by the usage recorder's flush on each batch (never per request).

Each flush (every 0.5 s) hands the batch's usage events and refused attempts to ``AlertDetector.detect``
(:mod:`.runner`), which runs every detector in ``DETECTORS``: first what each finds in this process's memory alone,
then, in one session and one transaction, what each finds with the database. One module per detector, each a class
behind the small :class:`~.base.Detector` protocol, its rule in its module's docstring:

* :mod:`.request_spike`: requests per minute per key, against the key's own past hour (memory only);
* :mod:`.retired_key_used`: a revoked or expired key presented (memory only);
* :mod:`.disallowed_address`: the valid key from outside its ``allowed_cidrs`` (memory only);
* :mod:`.failed_auth`: runs of typo'd keys sharing a live key's display prefix, bounded per hour (one SELECT);
* :mod:`.after_hours`: a request outside the tenant's working hours (one SELECT at most every ``HOURS_TTL`` s);
* :mod:`.new_network`: a /24 or /48 the key has not used lately (one SELECT, one upsert);
* :mod:`.new_country`: a registered country the key has not used lately (one SELECT, one upsert; both share
  :mod:`.new_place`).

Alerts go to an ``AlertSink`` (the alert service's ``raise_alert``: it dedupes in the database, one open alert per
key and kind, and writes the audit event, the webhook delivery and any auto-revoke in the same transaction). So
that a lasting condition (a key used all night, a spike, a client retrying its revoked key) does not cost a write per
flush, this process does not hand the same key and a ``lasting`` detector's kind to the sink again for
``repeat_after`` seconds.

A new detector: a module here with a class implementing ``Detector`` (its ``kind``, and ``in_memory`` or
``in_transaction``), one entry in ``DETECTORS``, and its ``AlertKind`` (tests/security/test_alert_detectors.py ties
the kinds the detectors raise to the enum).
"""

from vibexp.core.alerts.detectors.base import Batch, Detector, DetectorLimits, Finding
from vibexp.core.alerts.detectors.new_network import network_of
from vibexp.core.alerts.detectors.runner import DETECTORS, AlertDetector, AlertSink, DefaultAlertSink

__all__ = [
    "DETECTORS",
    "AlertDetector",
    "AlertSink",
    "Batch",
    "DefaultAlertSink",
    "Detector",
    "DetectorLimits",
    "Finding",
    "network_of",
]
