"""A PyTorch Lightning template for image classification. Start with ``make train``.

Importing the package applies the CPU thread rule (project/core/threads.py) when torch is not
loaded yet: every entry point (python -m project, project.manual, serve, sweep workers, the
benchmarks, the exercise checker, the tests) starts with OpenMP threads that do not spin against
other work. ``IMAGE_CLASSIFIER_THREADS=off`` keeps torch's defaults.
"""

import sys

if "torch" not in sys.modules:  # too late once torch has loaded: OpenMP has read its settings
    from project.core import threads

    threads.apply()
