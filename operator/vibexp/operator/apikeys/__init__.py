"""ApiKey reconciliation: observe, :func:`~vibexp.operator.plan.plan`, apply, report.

One level-based function, :func:`reconcile_apikey`, is called by every trigger (create/update/resume, the sync
timer, Secret events), always under the object's lock, and drives the object to its desired state from three
sources of truth:

* the database: the ApiKey's n-th key has ``external_ref = "k8s:<uid>:<n>"`` (unique), so the newest key is found
  by looking refs up, whatever the status says — a crash between any two steps never mints twice;
* the Secret: the plaintext exists only there; it is written *inside* the database transaction that mints the
  key (commit after the Secret is written), so a committed key always reached its Secret;
* the spec: tenant, names, revocation, rotation requests and schedule.

The decision is pure (``plan``); the modules here gather its inputs and apply it, one step each:

* :mod:`.observe` reads the database records (the newest key by its refs, the tenant) and turns them and the Secret
  into the planner's views;
* :mod:`.execute` applies one decision inside the reconcile's database transaction (mint, rotate, revoke, suspend,
  follow the spec's permissions, repair the Secret's metadata);
* :mod:`.status` says what happened: the status patch, the ``Ready`` condition and the events;
* :mod:`.reconcile` holds the entry points the handlers call and runs the three in order.

The plaintext key is never logged: it travels from ``create_key`` straight into the Secret body.
"""

from vibexp.operator.apikeys.observe import latest_key
from vibexp.operator.apikeys.reconcile import delete_apikey, reconcile_apikey, report_apikey_outage, sync_apikey

__all__ = ["delete_apikey", "latest_key", "reconcile_apikey", "report_apikey_outage", "sync_apikey"]
