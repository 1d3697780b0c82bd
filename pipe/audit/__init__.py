"""ACTION=audit: key-age enforcement over the IAM users of one account or many (see
pipe/actions/audit.py for the order of things)."""
