"""SR-IEM step by step: runnable tutorial steps, their exercises' checks, and plumbing.

See ``tutorials/README.md``. Steps are scripts (``python tutorials/NN_topic.py``);
``tutorials.checks`` holds the exercise checks.
"""
