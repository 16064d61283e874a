"""The README's ten-line driver: train the `ring` preset to its end in this thread, then say how it ended.

python examples/minimal.py [RUNS_DIR] [ITERATIONS]
"""

import sys

from gan_core import TrainingLoop, new_run, resolve

runs_dir, iterations = (sys.argv[1:] + ["runs"])[0], int((sys.argv[2:] + ["6000"])[0])
loop = TrainingLoop(new_run(*resolve("ring", iterations=iterations), runs_dir=runs_dir))
error = None
try:
    while not loop.done:
        step = loop.step()  # StepResult(iteration, epoch, d_updates, lr_g, lr_d, metrics)
except Exception as exc:  # the loop logs it and keeps the last good checkpoint
    error = exc
print(loop.close(error), loop.reason)  # finished reached 6000 iterations
print(loop.folder.path)
