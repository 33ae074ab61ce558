"""Test support that ships with the operator: an emulated Kubernetes API kopf runs against
(needs the ``kmock`` test dependency; never imported by the operator itself)."""
