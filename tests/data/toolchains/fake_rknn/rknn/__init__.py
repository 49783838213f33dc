"""A stand-in for rknn-toolkit2 in the tests: same API, same log format, scripted behaviour."""

__version__ = "2.5.0"
