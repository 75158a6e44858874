"""Unusual activity, in the product: alerts computed from the usage stream, deduplicated, delivered to webhooks."""
