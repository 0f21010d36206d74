"""SnapStart runtime hooks: environments restored from one snapshot must not share what should differ.

`snapshot_restore_py` ships only in Lambda's Python runtimes (3.12+), so elsewhere nothing is registered.
No connection needs dropping before the snapshot: the S3 client used at init is closed once the
model is fetched (handler.model_source) and nothing else opens one at init.
"""

from __future__ import annotations

import random
import sys


def register_snapstart_hooks() -> bool:
    """Register the after-restore hook when the runtime supports SnapStart; return whether it did."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(reseed_random)
    return True


def reseed_random() -> None:
    """Re-seed the random generators, which the snapshot would otherwise hand every restored environment alike."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
