"""Apps: an AWS SAM template (functions, state machines, buckets) run on the twin.

``template`` loads and refuses, ``build`` makes per-function venvs, ``deploy`` runs them on
the process backend, ``images``/``docker_run`` on Docker, ``runner`` runs a state machine once,
``record`` writes its run record, ``logstore`` keeps CloudWatch-style logs, ``cli`` is the glue.
See docs/templates.md.
"""
