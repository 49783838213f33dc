"""``from rknn.api import RKNN``, as in the real toolkit."""

from rknn.api.fake import RKNN

__all__ = ["RKNN"]
