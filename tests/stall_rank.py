"""``python tests/stall_rank.py fit ...``: ``python -m unlearn`` in which one rank stops taking part.

With ``UNLEARN_TEST_STALL=RANK:EPOCH`` in the environment, the process of global rank RANK sleeps
for an hour when epoch EPOCH starts, so the other ranks wait for it in their next collective: the
situation of a rank that hangs or is stopped by a debugger. tests/test_distributed.py uses it to
check that such a wait ends with the process-group timeout's message, and that SIGTERM ends it.
Lightning's launcher starts the other ranks by re-running this script, so every rank is patched.
"""

import os
import sys
import time

from unlearn.training.module import UnlearningModule

_epoch_start = UnlearningModule.on_train_epoch_start


def _stall_once(self) -> None:
    rank, epoch = (int(x) for x in os.environ.get("UNLEARN_TEST_STALL", "-1:-1").split(":"))
    if self.global_rank == rank and self.current_epoch == epoch:
        print(f"rank {rank} stalls at epoch {epoch}", file=sys.stderr, flush=True)
        time.sleep(3600)
    _epoch_start(self)


UnlearningModule.on_train_epoch_start = _stall_once

if __name__ == "__main__":
    from unlearn.cli import main

    sys.exit(main(sys.argv[1:]))
