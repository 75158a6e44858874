"""Every table, imported in one place so the metadata (and Alembic's autogenerate) sees them all."""

from vibexp.core.alerts.models import Alert, GrantCountry, GrantNetwork, KeyCountry, KeyNetwork, WebhookDelivery
from vibexp.core.audit.models import AuditEvent
from vibexp.core.content.models import Artifact, Memory, Prompt
from vibexp.core.content.versions import PromptLabel, PromptVersion
from vibexp.core.db import Base
from vibexp.core.keys.flash import KeyFlash
from vibexp.core.keys.models import ApiKey
from vibexp.core.members.models import Invitation
from vibexp.core.oauth.models import OAuthClient, OAuthCode, OAuthGrant
from vibexp.core.ratelimit.models import RateWindow
from vibexp.core.relayed_answers import RelayedAnswer
from vibexp.core.tenants.models import Tenant
from vibexp.core.usage.models import KeyAction
from vibexp.core.users.attempts import SignInBucket
from vibexp.core.users.first_run import FirstRunClaim
from vibexp.core.users.models import Membership, User
from vibexp.core.users.revoked_sessions import RevokedSession

__all__ = [
    "Alert",
    "ApiKey",
    "Artifact",
    "AuditEvent",
    "Base",
    "FirstRunClaim",
    "GrantCountry",
    "GrantNetwork",
    "Invitation",
    "KeyAction",
    "KeyCountry",
    "KeyFlash",
    "KeyNetwork",
    "Membership",
    "Memory",
    "OAuthClient",
    "OAuthCode",
    "OAuthGrant",
    "Prompt",
    "PromptLabel",
    "PromptVersion",
    "RateWindow",
    "RelayedAnswer",
    "RevokedSession",
    "SignInBucket",
    "Tenant",
    "User",
    "WebhookDelivery",
]
