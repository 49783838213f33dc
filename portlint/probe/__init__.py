"""Probes: small models that test one profile claim each against the real compiler.

``factory`` builds one-node models with chosen field values; ``boundary`` turns a profile
limit into the two models just inside and just outside it.
"""
