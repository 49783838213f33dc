"""The rewrite passes ``portlint fix`` can run.

What each pass promises and resolves is declared in ``portlint.pass_catalog``; what a pass
is (context, result, the ``Rewrite`` a module provides) in ``portlint.passes.base``; every
pass bound to its code, in run order, in ``portlint.passes.registry``.
"""
