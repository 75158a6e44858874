"""The VibeXP Kubernetes operator: ``VibeXPTenant`` and ``ApiKey`` custom resources into tenant and hashed key
records (through the same core services as the API) and Kubernetes Secrets holding the plaintext keys.

Run it with ``vibexp operator [-n NAMESPACE]...`` (see :func:`vibexp.operator.main.run_operator`).
"""
