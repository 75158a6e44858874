"""The audit trail: who changed what, from where — written in the same transaction as the change it records."""
