"""``VibeXPTenant.spec.owners``: e-mails reconciled into owner memberships (rules in :mod:`.plan`)."""

from vibexp.operator.owners.plan import CONDITION, OwnersReport
from vibexp.operator.owners.reconcile import reconcile_owners

__all__ = ["CONDITION", "OwnersReport", "reconcile_owners"]
