{{/*
The operator's RBAC rules, one place for both scopes. Each rule says which operator call needs it; nothing is
granted "just in case". Rules on ApiKeys, Secrets and Events apply cluster-wide when operator.watchNamespaces is
empty, and in each listed namespace only (a Role per namespace) otherwise.
*/}}

{{/* Rules the operator needs in every namespace it serves. */}}
{{- define "vibexp.operator.namespacedRules" -}}
# ApiKeys: Kopf lists and watches them and patches them (its finalizer, which revokes the key on delete, and its
# progress annotations); the operator reads one by name on Secret events and lists them when a tenant changes.
- apiGroups: ["vibexp.io"]
  resources: ["apikeys"]
  verbs: ["get", "list", "watch", "patch"]
# ApiKey status: conditions (Ready), phase, keyId, prefix, secretName, last used, request count.
- apiGroups: ["vibexp.io"]
  resources: ["apikeys/status"]
  verbs: ["patch"]
# Generated Secrets carry an owner reference to their ApiKey with blockOwnerDeletion, which clusters running the
# OwnerReferencesPermissionEnforcement admission plugin allow only to who may update the owner's finalizers.
- apiGroups: ["vibexp.io"]
  resources: ["apikeys/finalizers"]
  verbs: ["update"]
# Secrets that deliver keys: created with the plaintext key, read back to check they still hold it, replaced
# (update) when the key inside was lost, patched when secretTemplate changes, deleted on revocation. Kopf lists
# and watches them (label app.kubernetes.io/managed-by=vibexp-operator; RBAC cannot filter by label) to repair
# drift at once. This is why operator.watchNamespaces exists: it confines the operator's Secret access.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Events on ApiKeys (Normal/Warning per step, e.g. a namespace the tenant does not allow), posted by Kopf.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Rules that are cluster-wide by nature. */}}
{{- define "vibexp.operator.clusterRules" -}}
# Kopf's resource observer lists and watches CRDs to notice vibexp.io CRDs being installed, upgraded or removed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# VibeXPTenants are cluster-scoped: Kopf lists and watches them and patches its finalizer and annotations; the
# operator reads an ApiKey's tenant by name.
- apiGroups: ["vibexp.io"]
  resources: ["vibexptenants"]
  verbs: ["get", "list", "watch", "patch"]
# VibeXPTenant status: conditions (Ready), hourly limit, active keys, requests this hour.
- apiGroups: ["vibexp.io"]
  resources: ["vibexptenants/status"]
  verbs: ["patch"]
{{- if .Values.operator.watchNamespaces }}
# Serving a list of namespaces, Kopf lists and watches namespaces to know which of them exist.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/* Non-empty when the release namespace needs its own events Role (namespaced mode, not a served namespace). */}}
{{- define "vibexp.operator.needsEventsRole" -}}
{{- if and .Values.operator.watchNamespaces (not (has .Release.Namespace .Values.operator.watchNamespaces)) }}true{{ end }}
{{- end }}
